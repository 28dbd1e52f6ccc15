/**
 * The RTSP server: a TCP listener (with `tls`, RTSPS: the same connections behind TLS) whose connections publish
 * into / read from the hub (conn.ts), plus the UDP port range RTP/RTCP over UDP uses. Connections are capped in
 * total and per client address (a refused one is closed at once, before any byte is read).
 */
import type { MediaConfig } from "../../../config.ts";
import type { Logger } from "../../../core/logger.ts";
import type { MediaAuth } from "../../auth/auth.ts";
import type { Hub } from "../../hub.ts";
import { type Listener, listen, type TlsFiles } from "../rtmp/listener.ts";
import { RtspConn, type RtspConnLimits } from "./conn.ts";
import { UdpPorts } from "./udp.ts";

export interface RtspServerOptions {
  host: string;
  port: number;
  hub: Hub;
  log: Logger;
  config: MediaConfig["rtsp"];
  auth?: MediaAuth;
  /** Certificate and key: serve RTSPS on this port (TCP-interleaved only). */
  tls?: TlsFiles;
  /** UDP port pairs shared with the other RTSP listener (none: TCP only). */
  udp?: UdpPorts;
}

const REFUSAL_LOG_MS = 10_000;

export const rtspConnLimits = (c: MediaConfig["rtsp"]): RtspConnLimits => ({
  handshakeTimeoutMs: c.handshakeTimeoutSeconds * 1000,
  idleTimeoutMs: c.idleTimeoutSeconds * 1000,
  maxRequestBytes: c.maxRequestBytes,
  maxHeaders: c.maxHeaders,
  maxBodyBytes: c.maxBodyBytes,
  maxRequestsBeforeStart: c.maxRequestsBeforeStart,
});

export class RtspServer {
  readonly conns = new Set<RtspConn>();
  readonly #perAddress = new Map<string, number>();
  #listener: Listener | undefined;
  #refused = 0;
  #refusalLogged = 0;

  /** The UDP ports of media.rtsp, for both listeners. */
  static udpPorts(host: string, c: MediaConfig["rtsp"]): UdpPorts | undefined {
    return c.udp ? new UdpPorts(host, c.udpPortMin, c.udpPortMax) : undefined;
  }

  static async start(o: RtspServerOptions): Promise<RtspServer> {
    const s = new RtspServer();
    const name = o.tls ? "rtsps" : "rtsp";
    const log = o.log.child({ server: name });
    const c = o.config;
    const limits = rtspConnLimits(c);
    s.#listener = await listen(
      o.host,
      o.port,
      (socket) => {
        const addr = socket.remoteAddress ?? "";
        const n = s.#perAddress.get(addr) ?? 0;
        if (s.conns.size >= c.maxConnections || n >= c.maxConnectionsPerAddress) {
          socket.destroy();
          s.#refuse(log, addr, s.conns.size >= c.maxConnections ? "maxConnections" : "maxConnectionsPerAddress");
          return;
        }
        s.#perAddress.set(addr, n + 1);
        const conn = new RtspConn(socket, {
          hub: o.hub,
          log,
          protocol: name,
          limits,
          auth: o.auth,
          udp: o.tls ? undefined : o.udp,
        });
        s.conns.add(conn);
        socket.once("close", () => {
          s.conns.delete(conn);
          const left = (s.#perAddress.get(addr) ?? 1) - 1;
          if (left > 0) s.#perAddress.set(addr, left);
          else s.#perAddress.delete(addr);
        });
      },
      o.tls,
      (e, remote) => log.info("rtsps: TLS handshake failed; connection closed", { remote, error: e.message }),
      c.maxConnections + 1,
    );
    log.info(`${name} listening`, { host: o.host, port: s.port });
    return s;
  }

  #refuse(log: Logger, addr: string, cap: string): void {
    this.#refused++;
    const now = Date.now();
    if (now - this.#refusalLogged < REFUSAL_LOG_MS) return;
    this.#refusalLogged = now;
    log.warn("rtsp connection refused: too many connections", { remote: addr, cap, refused: this.#refused });
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
