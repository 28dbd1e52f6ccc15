/**
 * What the DHT sends datagrams through: a UDP socket in production, an in-memory network in the 1,000-node
 * simulation (one process, 2 cores: a thousand sockets would measure the kernel's loopback, not the routing).
 * Both deliver asynchronously and may lose datagrams, as UDP does.
 */
import { createSocket, type Socket } from "node:dgram";
import { AmiError } from "../../core/errors.ts";
import type { NodeAddr } from "./id.ts";
import { MAX_DATAGRAM } from "./krpc.ts";

export type Receive = (msg: Buffer, from: NodeAddr) => void;

export interface DhtTransport {
  readonly address: NodeAddr;
  send(msg: Buffer, to: NodeAddr): void;
  close(): Promise<void>;
}

/** Binds a UDP socket; `onError` gets send/receive errors (ICMP unreachable and the like), which are never fatal. */
export async function udpTransport(
  host: string,
  port: number,
  receive: Receive,
  onError: (err: Error) => void,
): Promise<DhtTransport> {
  const sock: Socket = createSocket({ type: "udp4", recvBufferSize: 1 << 20 });
  sock.on("message", (msg, rinfo) => {
    // Oversized datagrams are dropped before any parsing.
    if (msg.length <= MAX_DATAGRAM) receive(msg, { host: rinfo.address, port: rinfo.port });
  });
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) =>
      reject(new AmiError("AMI_UNAVAILABLE", `dht: cannot bind UDP ${host}:${port}: ${err.message}`));
    sock.once("error", fail);
    sock.bind(port, host, () => {
      sock.off("error", fail);
      resolve();
    });
  });
  sock.on("error", onError);
  const a = sock.address();
  let closed = false;
  return {
    address: { host: a.address, port: a.port },
    send(msg, to) {
      if (closed) return;
      sock.send(msg, to.port, to.host, (err) => {
        if (err) onError(err);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        closed = true;
        sock.close(() => resolve());
      }),
  };
}

/**
 * An in-memory datagram network: every attached node gets its own IPv4 address (so per-IP token checks and rate
 * limits behave as on the internet); delivery is on a later macrotask, with an optional fixed latency.
 */
export class MemoryNetwork {
  private readonly nodes = new Map<string, Receive>();
  private nextHost = 1;
  readonly latencyMs: number;
  delivered = 0;
  lost = 0;

  constructor(opts: { latencyMs?: number } = {}) {
    this.latencyMs = opts.latencyMs ?? 0;
  }

  attach(receive: Receive): DhtTransport {
    const n = this.nextHost++;
    const address = { host: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, port: 6881 };
    const key = `${address.host}:${address.port}`;
    this.nodes.set(key, receive);
    return {
      address,
      send: (msg, to) => {
        const copy = Buffer.from(msg);
        const deliver = () => {
          const r = this.nodes.get(`${to.host}:${to.port}`);
          if (!r || !this.nodes.has(key)) {
            this.lost++;
            return;
          }
          this.delivered++;
          r(copy, address);
        };
        if (this.latencyMs > 0) setTimeout(deliver, this.latencyMs);
        else setImmediate(deliver);
      },
      close: async () => {
        this.nodes.delete(key);
      },
    };
  }
}
