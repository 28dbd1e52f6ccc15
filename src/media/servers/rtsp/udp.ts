/**
 * Server UDP port pairs for RTP over UDP: an even RTP port and the next (RTCP) port from media.rtsp's range,
 * one pair per set-up track, bound on the listener's host and closed with the session. Pairs are tried round the
 * range from where the last one was found; a busy port (another program, another pair) is skipped.
 */
import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";

export interface UdpPair {
  port: number;
  rtp: Socket;
  rtcp: Socket;
  close(): void;
}

const bind = (s: Socket, port: number, host: string) =>
  new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.bind(port, host, () => {
      s.off("error", reject);
      resolve();
    });
  });

export class UdpPorts {
  readonly #host: string;
  readonly #min: number;
  readonly #max: number;
  #next: number;
  readonly #open = new Set<number>();

  constructor(host: string, min: number, max: number) {
    this.#host = host;
    this.#min = min + (min % 2);
    this.#max = max;
    this.#next = this.#min;
  }

  get inUse(): number {
    return this.#open.size;
  }

  /** A bound pair; undefined when every pair of the range is taken. */
  async open(): Promise<UdpPair | undefined> {
    const type = isIP(this.#host) === 6 ? "udp6" : "udp4";
    const count = Math.floor((this.#max - this.#min + 1) / 2);
    for (let n = 0; n < count; n++) {
      const port = this.#next;
      this.#next = port + 2 + 1 > this.#max ? this.#min : port + 2;
      if (this.#open.has(port)) continue;
      const rtp = createSocket(type);
      const rtcp = createSocket(type);
      try {
        await bind(rtp, port, this.#host);
        await bind(rtcp, port + 1, this.#host);
      } catch {
        rtp.close();
        try {
          rtcp.close();
        } catch {}
        continue;
      }
      // An ICMP port-unreachable from a reader that left is an 'error' on the socket: never fatal.
      rtp.on("error", () => {});
      rtcp.on("error", () => {});
      this.#open.add(port);
      let closed = false;
      return {
        port,
        rtp,
        rtcp,
        close: () => {
          if (closed) return;
          closed = true;
          this.#open.delete(port);
          rtp.close();
          rtcp.close();
        },
      };
    }
    return undefined;
  }
}
