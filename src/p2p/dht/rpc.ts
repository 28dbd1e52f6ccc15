/**
 * Outgoing KRPC queries and their transactions: a 2-byte transaction id per query, a timeout, and a reply
 * accepted only from the address the query went to (anyone can send us a datagram with a guessed `t`).
 * The number of queries in flight is capped; past the cap a query fails at once instead of queueing.
 */
import type { BInput } from "../bencode.ts";
import { addrKey, type NodeAddr } from "./id.ts";
import { type ErrorMsg, encodeQuery, type Method, type Response } from "./krpc.ts";

interface Pending {
  to: string;
  resolve: (r: Response | ErrorMsg | null) => void;
  timer: NodeJS.Timeout;
}

export interface RpcOptions {
  send: (msg: Buffer, to: NodeAddr) => void;
  timeoutMs: number;
  maxInflight: number;
  readOnly: boolean;
}

export class Rpc {
  private readonly pending = new Map<number, Pending>();
  private next = Math.floor(Math.random() * 65536);
  private readonly o: RpcOptions;
  timeouts = 0;
  overCap = 0;
  /** Replies matching no query of ours (late, spoofed or from the wrong address). */
  unmatched = 0;

  constructor(o: RpcOptions) {
    this.o = o;
  }

  get inflight(): number {
    return this.pending.size;
  }

  /** Resolves with the reply (a response or a KRPC error), or null on timeout, abort, cap or shutdown. */
  query(to: NodeAddr, q: Method, args: Record<string, BInput | undefined>, signal?: AbortSignal) {
    return new Promise<Response | ErrorMsg | null>((resolve) => {
      if (signal?.aborted || this.pending.size >= this.o.maxInflight || this.pending.size >= 65536) {
        if (!signal?.aborted) this.overCap++;
        return resolve(null);
      }
      let tid = this.next;
      while (this.pending.has(tid)) tid = (tid + 1) & 0xffff;
      this.next = (tid + 1) & 0xffff;
      const t = Buffer.alloc(2);
      t.writeUInt16BE(tid);
      const done = (r: Response | ErrorMsg | null) => {
        const p = this.pending.get(tid);
        if (!p) return;
        clearTimeout(p.timer);
        this.pending.delete(tid);
        signal?.removeEventListener("abort", onAbort);
        resolve(r);
      };
      const onAbort = () => done(null);
      signal?.addEventListener("abort", onAbort, { once: true });
      const timer = setTimeout(() => {
        this.timeouts++;
        done(null);
      }, this.o.timeoutMs);
      this.pending.set(tid, { to: addrKey(to), resolve: done, timer });
      this.o.send(encodeQuery(t, q, args, this.o.readOnly), to);
    });
  }

  /** A response or error arrived: true when it answered one of our queries. */
  reply(msg: Response | ErrorMsg, from: NodeAddr): boolean {
    const p = msg.t.length === 2 ? this.pending.get(msg.t.readUInt16BE()) : undefined;
    if (!p || p.to !== addrKey(from)) {
      this.unmatched++;
      return false;
    }
    p.resolve(msg);
    return true;
  }

  close(): void {
    for (const p of [...this.pending.values()]) p.resolve(null);
  }
}
