/**
 * The RTMP server: a TCP listener whose connections publish into / play from the hub. With `tls` it is the RTMPS
 * server: the same connection handling behind a TLS listener. Connections are capped in total and per client
 * address (a refused one is closed at once, before any byte is read), and their buffered bytes are charged to a
 * budget shared with the other RTMP listener.
 */
import type { MediaConfig } from "../../../config.ts";
import type { Logger } from "../../../core/logger.ts";
import type { MediaAuth } from "../../auth/auth.ts";
import type { Hub } from "../../hub.ts";
import { ByteBudget } from "../../protocols/rtmp/budget.ts";
import { type ConnLimits, RtmpConn } from "./conn.ts";
import { type Listener, listen, type TlsFiles } from "./listener.ts";

export interface RtmpLimits extends ConnLimits {
  maxConnections: number;
  maxConnectionsPerAddress: number;
}

/** The limits in `media.rtmp`, with one budget for the RTMP and RTMPS listeners to share. */
export const rtmpLimits = (c: MediaConfig["rtmp"]): RtmpLimits => ({
  maxConnections: c.maxConnections,
  maxConnectionsPerAddress: c.maxConnectionsPerAddress,
  handshakeTimeoutMs: c.handshakeTimeoutSeconds * 1000,
  idleTimeoutMs: c.idleTimeoutSeconds * 1000,
  maxMessageBytes: c.maxMessageBytes,
  connectionBufferBytes: c.connectionBufferBytes,
  shared: new ByteBudget(c.totalBufferBytes),
});

export interface RtmpServerOptions {
  host: string;
  port: number;
  hub: Hub;
  log: Logger;
  limits: RtmpLimits;
  auth?: MediaAuth;
  /** Players wait this long for a publisher that left to come back (media.endGraceSeconds). */
  endGraceMs?: number;
  /** Certificate and key: serve RTMPS (RTMP over TLS) on this port. */
  tls?: TlsFiles;
}

/** Refused connections are logged at most this often (a flood must not flood the log too). */
const REFUSAL_LOG_MS = 10_000;

export class RtmpServer {
  readonly conns = new Set<RtmpConn>();
  readonly #perAddress = new Map<string, number>();
  #listener: Listener | undefined;
  #refused = 0;
  #refusalLogged = 0;

  static async start(o: RtmpServerOptions): Promise<RtmpServer> {
    const s = new RtmpServer();
    const name = o.tls ? "rtmps" : "rtmp";
    const log = o.log.child({ server: name });
    const limits = o.limits;
    s.#listener = await listen(
      o.host,
      o.port,
      (socket) => {
        const addr = socket.remoteAddress ?? "";
        const n = s.#perAddress.get(addr) ?? 0;
        if (s.conns.size >= limits.maxConnections || n >= limits.maxConnectionsPerAddress) {
          socket.destroy();
          s.#refuse(log, addr, s.conns.size >= limits.maxConnections ? "maxConnections" : "maxConnectionsPerAddress");
          return;
        }
        s.#perAddress.set(addr, n + 1);
        const c = new RtmpConn(socket, {
          hub: o.hub,
          log,
          protocol: name,
          limits,
          auth: o.auth,
          endGraceMs: o.endGraceMs,
        });
        s.conns.add(c);
        socket.once("close", () => {
          s.conns.delete(c);
          const left = (s.#perAddress.get(addr) ?? 1) - 1;
          if (left > 0) s.#perAddress.set(addr, left);
          else s.#perAddress.delete(addr);
        });
      },
      o.tls,
      (e, remote) => log.info("rtmps: TLS handshake failed; connection closed", { remote, error: e.message }),
      // One spare: our own cap is reached first and logs the refusal.
      limits.maxConnections + 1,
    );
    log.info(`${name} listening`, { host: o.host, port: s.port });
    return s;
  }

  #refuse(log: Logger, addr: string, cap: string): void {
    this.#refused++;
    const now = Date.now();
    if (now - this.#refusalLogged < REFUSAL_LOG_MS) return;
    this.#refusalLogged = now;
    log.warn("rtmp connection refused: too many connections", { remote: addr, cap, refused: this.#refused });
    this.#refused = 0;
  }

  get port(): number {
    return this.#listener?.port ?? 0;
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.close("server shutting down");
    await this.#listener?.close();
  }
}
