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
import { CappedListener, type TlsFiles } from "./listener.ts";

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

export class RtmpServer {
  #listener!: CappedListener<RtmpConn>;

  static async start(o: RtmpServerOptions): Promise<RtmpServer> {
    const s = new RtmpServer();
    const name = o.tls ? "rtmps" : "rtmp";
    const log = o.log.child({ server: name });
    const limits = o.limits;
    s.#listener = await CappedListener.open({
      host: o.host,
      port: o.port,
      name,
      log,
      maxConnections: limits.maxConnections,
      maxConnectionsPerAddress: limits.maxConnectionsPerAddress,
      tls: o.tls,
      connect: (socket) =>
        new RtmpConn(socket, { hub: o.hub, log, protocol: name, limits, auth: o.auth, endGraceMs: o.endGraceMs }),
    });
    return s;
  }

  get conns(): ReadonlySet<RtmpConn> {
    return this.#listener.conns;
  }

  get port(): number {
    return this.#listener.port;
  }

  close(): Promise<void> {
    return this.#listener.close();
  }
}
