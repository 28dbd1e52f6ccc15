/** The RTMP server: a TCP listener whose connections publish into / play from the hub. */
import type { Logger } from "../../../core/logger.ts";
import type { MediaAuth } from "../../auth/auth.ts";
import type { Hub } from "../../hub.ts";
import { RtmpConn } from "./conn.ts";
import { type Listener, listen } from "./listener.ts";

export interface RtmpServerOptions {
  host: string;
  port: number;
  hub: Hub;
  log: Logger;
  handshakeTimeoutMs?: number;
  auth?: MediaAuth;
}

export class RtmpServer {
  readonly conns = new Set<RtmpConn>();
  #listener: Listener | undefined;

  static async start(o: RtmpServerOptions): Promise<RtmpServer> {
    const s = new RtmpServer();
    const log = o.log.child({ server: "rtmp" });
    s.#listener = await listen(o.host, o.port, (socket) => {
      const c = new RtmpConn(socket, {
        hub: o.hub,
        log,
        handshakeTimeoutMs: o.handshakeTimeoutMs ?? 10_000,
        auth: o.auth,
      });
      s.conns.add(c);
      socket.once("close", () => s.conns.delete(c));
    });
    log.info("rtmp listening", { host: o.host, port: s.port });
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
