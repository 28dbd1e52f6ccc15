/**
 * The RTMP server: a TCP listener whose connections publish into / play from the hub. With `tls` it is the RTMPS
 * server: the same connection handling behind a TLS listener.
 */
import type { Logger } from "../../../core/logger.ts";
import type { MediaAuth } from "../../auth/auth.ts";
import type { Hub } from "../../hub.ts";
import { RtmpConn } from "./conn.ts";
import { type Listener, listen, type TlsFiles } from "./listener.ts";

export interface RtmpServerOptions {
  host: string;
  port: number;
  hub: Hub;
  log: Logger;
  handshakeTimeoutMs?: number;
  auth?: MediaAuth;
  /** Certificate and key: serve RTMPS (RTMP over TLS) on this port. */
  tls?: TlsFiles;
}

export class RtmpServer {
  readonly conns = new Set<RtmpConn>();
  #listener: Listener | undefined;

  static async start(o: RtmpServerOptions): Promise<RtmpServer> {
    const s = new RtmpServer();
    const name = o.tls ? "rtmps" : "rtmp";
    const log = o.log.child({ server: name });
    s.#listener = await listen(
      o.host,
      o.port,
      (socket) => {
        const c = new RtmpConn(socket, {
          hub: o.hub,
          log,
          protocol: name,
          handshakeTimeoutMs: o.handshakeTimeoutMs ?? 10_000,
          auth: o.auth,
        });
        s.conns.add(c);
        socket.once("close", () => s.conns.delete(c));
      },
      o.tls,
      (e, remote) => log.info("rtmps: TLS handshake failed; connection closed", { remote, error: e.message }),
    );
    log.info(`${name} listening`, { host: o.host, port: s.port });
    return s;
  }

  get port(): number {
    return this.#listener?.port ?? 0;
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.close("server shutting down");
    await this.#listener?.close();
  }
}
