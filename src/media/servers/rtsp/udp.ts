/**
 * Server UDP port pairs for RTP over UDP: an even RTP port and the next (RTCP) port from media.rtsp's range,
 * one pair per set-up track, bound on the listener's host and closed with the session. Pairs are tried round the
 * range from where the last one was found; a busy port (another program, another pair) is skipped.
 *
 * The range is one pool shared fairly by client addresses (an IPv6 address counts by its /64, what one host
 * usually has). While pairs are free anyone takes them: many cameras behind one NAT may hold most of the pool.
 * When it is full, a client address holding fewer pairs than another takes one back from the richest: that
 * address's newest session that has not started (else its newest) is closed, as long as the richest keeps at
 * least as many as the asker then has. An asker already holding its share gets none (the connection answers
 * 461, and clients retry over TCP-interleaved). So an address holding the whole pool cannot keep another from
 * UDP: at worst every address ends with an equal share.
 */
import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";

export interface UdpPair {
  port: number;
  rtp: Socket;
  rtcp: Socket;
  close(): void;
}

/** Who asks for a pair: its client address, whether its session has started, and how to end it. */
export interface UdpHolder {
  address: string;
  started(): boolean;
  /** Give back every pair it holds (synchronously closing them), because another address needs one. */
  reclaim(): void;
}

const bind = (s: Socket, port: number, host: string) =>
  new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.bind(port, host, () => {
      s.off("error", reject);
      resolve();
    });
  });

/** The fairness key of a client address: IPv4 as is, IPv6 by its /64 prefix. */
export function addressKey(ip: string): string {
  const v4 = ip.startsWith("::ffff:") ? ip.slice(7) : ip;
  if (isIP(v4) !== 6) return v4;
  const [head = "", tail = ""] = v4.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = v4.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g || "0", 16).toString(16))
    .join(":")}::/64`;
}

export class UdpPorts {
  readonly #host: string;
  readonly #min: number;
  readonly #max: number;
  #next: number;
  readonly #open = new Set<number>();
  /** Pairs held per address key, per holder (insertion order: oldest first). */
  readonly #held = new Map<string, Map<UdpHolder, number>>();
  /** Sockets being closed: a reclaimed port is bound again only once they are. */
  #closing: Promise<void>[] = [];
  /** Pairs taken back from one address for another. */
  reclaimed = 0;

  constructor(host: string, min: number, max: number) {
    this.#host = host;
    this.#min = min + (min % 2);
    this.#max = max;
    this.#next = this.#min;
  }

  get inUse(): number {
    return this.#open.size;
  }

  get size(): number {
    return Math.floor((this.#max - this.#min + 1) / 2);
  }

  /** Pairs an address holds now. */
  heldBy(address: string): number {
    let n = 0;
    for (const c of this.#held.get(addressKey(address))?.values() ?? []) n += c;
    return n;
  }

  /** A bound pair; undefined when the pool is full and the asker already holds its fair share. */
  async open(holder?: UdpHolder): Promise<UdpPair | undefined> {
    let pair = await this.#bindFree(holder);
    if (pair || !holder) return pair;
    if (!this.#reclaimFor(holder)) return undefined;
    await Promise.all(this.#closing);
    pair = await this.#bindFree(holder);
    return pair;
  }

  /** Ends the richest address's newest session when that leaves it at least as rich as `asker` then is. */
  #reclaimFor(asker: UdpHolder): boolean {
    const key = addressKey(asker.address);
    const mine = this.heldBy(asker.address);
    let richest: Map<UdpHolder, number> | undefined;
    let most = 0;
    for (const [k, holders] of this.#held) {
      if (k === key) continue;
      let n = 0;
      for (const c of holders.values()) n += c;
      if (n > most) {
        most = n;
        richest = holders;
      }
    }
    if (!richest) return false;
    const all = [...richest.entries()];
    const victim = all.findLast(([h]) => !h.started()) ?? all.at(-1);
    if (!victim || most - victim[1] < mine + 1) return false;
    this.reclaimed += victim[1];
    victim[0].reclaim();
    return true;
  }

  async #bindFree(holder: UdpHolder | undefined): Promise<UdpPair | undefined> {
    const type = isIP(this.#host) === 6 ? "udp6" : "udp4";
    for (let n = 0; n < this.size; n++) {
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
      if (this.#open.has(port)) {
        // Bound by a concurrent open meanwhile cannot happen (bind would fail), but stay safe.
        rtp.close();
        rtcp.close();
        continue;
      }
      // An ICMP port-unreachable from a reader that left is an 'error' on the socket: never fatal.
      rtp.on("error", () => {});
      rtcp.on("error", () => {});
      this.#open.add(port);
      const key = holder ? addressKey(holder.address) : undefined;
      if (holder && key) {
        const holders = this.#held.get(key) ?? new Map<UdpHolder, number>();
        this.#held.set(key, holders);
        holders.set(holder, (holders.get(holder) ?? 0) + 1);
      }
      let closed = false;
      return {
        port,
        rtp,
        rtcp,
        close: () => {
          if (closed) return;
          closed = true;
          this.#open.delete(port);
          if (holder && key) {
            const holders = this.#held.get(key);
            const n = (holders?.get(holder) ?? 1) - 1;
            if (n > 0) holders?.set(holder, n);
            else holders?.delete(holder);
            if (holders?.size === 0) this.#held.delete(key);
          }
          const done = Promise.all([
            new Promise<void>((r) => rtp.close(() => r())),
            new Promise<void>((r) => rtcp.close(() => r())),
          ]).then(() => {
            this.#closing = this.#closing.filter((p) => p !== done);
          });
          this.#closing.push(done);
        },
      };
    }
    return undefined;
  }
}
