/**
 * The RTSP server: a TCP listener (with `tls`, RTSPS: the same connections behind TLS) whose connections publish
 * into / read from the hub (conn.ts), plus the UDP port range RTP/RTCP over UDP uses. Connections are capped in
 * total and per client address (a refused one is closed at once, before any byte is read).
 */
import type { MediaConfig } from "../../../config.ts";
import type { Logger } from "../../../core/logger.ts";
import type { MediaAuth } from "../../auth/auth.ts";
import type { Hub } from "../../hub.ts";
import { CappedListener, type TlsFiles } from "../rtmp/listener.ts";
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

export const rtspConnLimits = (c: MediaConfig["rtsp"]): RtspConnLimits => ({
  handshakeTimeoutMs: c.handshakeTimeoutSeconds * 1000,
  idleTimeoutMs: c.idleTimeoutSeconds * 1000,
  maxRequestBytes: c.maxRequestBytes,
  maxHeaders: c.maxHeaders,
  maxBodyBytes: c.maxBodyBytes,
  maxRequestsBeforeStart: c.maxRequestsBeforeStart,
});

export class RtspServer {
  #listener!: CappedListener<RtspConn>;

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
    s.#listener = await CappedListener.open({
      host: o.host,
      port: o.port,
      name,
      log,
      maxConnections: c.maxConnections,
      maxConnectionsPerAddress: c.maxConnectionsPerAddress,
      tls: o.tls,
      connect: (socket) =>
        new RtspConn(socket, {
          hub: o.hub,
          log,
          protocol: name,
          limits,
          auth: o.auth,
          udp: o.tls ? undefined : o.udp,
        }),
    });
    return s;
  }

  get conns(): ReadonlySet<RtspConn> {
    return this.#listener.conns;
  }

  get port(): number {
    return this.#listener.port;
  }

  close(): Promise<void> {
    return this.#listener.close();
  }
}
