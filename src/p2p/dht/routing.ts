/**
 * The BEP 5 routing table: buckets of at most K nodes covering the 160-bit space. It starts as one bucket; only the
 * bucket that covers our own id splits when full, so the table holds many nodes near us and a few far away. Bucket
 * i (for i < last) holds the nodes sharing exactly i leading bits with our id; the last one holds the rest.
 *
 * Node states follow BEP 5: good (answered us within 15 min, or answered once and queried us within 15 min),
 * questionable (silent for 15 min) and bad (failed to answer several queries in a row). A full bucket that cannot
 * split replaces a bad node at once, asks the caller to ping its most stale questionable node (the newcomer waits
 * in a small replacement cache and takes the slot if that node fails), and otherwise drops the newcomer.
 */
import { commonPrefixBits, compareDistance, distance48, ID_BITS, type NodeInfo, randomIdWithPrefix } from "./id.ts";
import { isLoopback } from "./local.ts";

export const K = 8;
export const QUESTIONABLE_MS = 15 * 60_000;
/** Consecutive unanswered queries that make a node bad. */
export const BAD_FAILURES = 2;

export interface TableNode extends NodeInfo {
  /** Last time it answered one of our queries (0 = never). */
  lastReply: number;
  /** Last time it answered or queried us. */
  lastSeen: number;
  failures: number;
}

interface Bucket {
  nodes: TableNode[];
  /** Recently seen nodes waiting for a slot, newest last. */
  replacements: TableNode[];
  lastChanged: number;
}

export type AddResult =
  | { kind: "added" | "updated" | "dropped" }
  /** The bucket is full of good-or-questionable nodes: ping `ping`, and call `failed` on it if it does not answer. */
  | { kind: "full"; ping: TableNode };

export interface RoutingTableOptions {
  /**
   * Slots (nodes and replacements) one IP may hold, so one host claiming many ids cannot fill the buckets around
   * a target (a Sybil). Loopback is exempt: only local processes can send from it (tests, simulations).
   */
  perIp?: number;
  /** Hosts exempt from perIp (default: loopback; a UDP node adds this machine's own addresses, local.ts). */
  exempt?: (host: string) => boolean;
}

export class RoutingTable {
  readonly id: Buffer;
  private buckets: Bucket[];
  private readonly now: () => number;
  private readonly perIp: number;
  private readonly exempt: (host: string) => boolean;

  constructor(id: Buffer, now: () => number = Date.now, o: RoutingTableOptions = {}) {
    this.id = id;
    this.now = now;
    this.perIp = o.perIp ?? Number.POSITIVE_INFINITY;
    this.exempt = o.exempt ?? isLoopback;
    this.buckets = [{ nodes: [], replacements: [], lastChanged: now() }];
  }

  get size(): number {
    let n = 0;
    for (const b of this.buckets) n += b.nodes.length;
    return n;
  }
  get bucketCount(): number {
    return this.buckets.length;
  }

  private indexOf(id: Buffer): number {
    return Math.min(commonPrefixBits(this.id, id), this.buckets.length - 1);
  }

  state(n: TableNode): "good" | "questionable" | "bad" {
    if (n.failures >= BAD_FAILURES) return "bad";
    const t = this.now();
    if (n.lastReply > 0 && t - n.lastReply < QUESTIONABLE_MS) return "good";
    if (n.lastReply > 0 && t - n.lastSeen < QUESTIONABLE_MS) return "good";
    return "questionable";
  }

  get(id: Buffer): TableNode | undefined {
    return this.buckets[this.indexOf(id)].nodes.find((n) => n.id.equals(id));
  }

  /**
   * A node was heard from: `replied` when it answered our query (verified), otherwise it queried us. Nodes are only
   * ever added from their own datagrams, never from another node's list, so a liar cannot fill our table.
   */
  add(info: NodeInfo, replied: boolean): AddResult {
    if (info.id.equals(this.id)) return { kind: "dropped" };
    const t = this.now();
    for (;;) {
      const bi = this.indexOf(info.id);
      const b = this.buckets[bi];
      const known = b.nodes.find((n) => n.id.equals(info.id));
      if (known) {
        // Same id from a new address: keep the old one (a spoofer would otherwise redirect it) unless it went bad.
        if (known.host !== info.host || known.port !== info.port) {
          if (this.state(known) !== "bad") return { kind: "dropped" };
          known.host = info.host;
          known.port = info.port;
        }
        known.lastSeen = t;
        if (replied) {
          known.lastReply = t;
          known.failures = 0;
        }
        b.lastChanged = t;
        return { kind: "updated" };
      }
      if (this.atIpLimit(info.host)) return { kind: "dropped" };
      const node: TableNode = { ...info, lastReply: replied ? t : 0, lastSeen: t, failures: 0 };
      if (b.nodes.length < K) {
        b.nodes.push(node);
        b.lastChanged = t;
        return { kind: "added" };
      }
      if (bi === this.buckets.length - 1 && this.buckets.length < ID_BITS) {
        this.split();
        continue;
      }
      const bad = b.nodes.findIndex((n) => this.state(n) === "bad");
      if (bad >= 0) {
        b.nodes[bad] = node;
        b.lastChanged = t;
        return { kind: "added" };
      }
      b.replacements = b.replacements.filter((n) => !n.id.equals(info.id));
      b.replacements.push(node);
      if (b.replacements.length > K) b.replacements.shift();
      const stale = b.nodes.filter((n) => this.state(n) === "questionable").sort((x, y) => x.lastSeen - y.lastSeen)[0];
      return stale ? { kind: "full", ping: stale } : { kind: "dropped" };
    }
  }

  /** Whether `host` already holds perIp slots (a scan of ≤ 160 × 2K entries, only for an unknown id). */
  private atIpLimit(host: string): boolean {
    if (this.perIp === Number.POSITIVE_INFINITY || this.exempt(host)) return false;
    let n = 0;
    for (const b of this.buckets) {
      for (const x of b.nodes) if (x.host === host && ++n >= this.perIp) return true;
      for (const x of b.replacements) if (x.host === host && ++n >= this.perIp) return true;
    }
    return false;
  }

  private split(): void {
    const last = this.buckets[this.buckets.length - 1];
    const depth = this.buckets.length - 1;
    const near: Bucket = { nodes: [], replacements: [], lastChanged: last.lastChanged };
    const keep = (n: TableNode) => commonPrefixBits(this.id, n.id) === depth;
    near.nodes = last.nodes.filter((n) => !keep(n));
    near.replacements = last.replacements.filter((n) => !keep(n));
    last.nodes = last.nodes.filter(keep);
    last.replacements = last.replacements.filter(keep);
    this.buckets.push(near);
  }

  /** A query to `id` went unanswered (`bad`: an eviction ping did, which settles it): after BAD_FAILURES it is replaced by the freshest replacement, if any. */
  failed(id: Buffer, bad = false): void {
    const b = this.buckets[this.indexOf(id)];
    const i = b.nodes.findIndex((n) => n.id.equals(id));
    if (i < 0) return;
    const n = b.nodes[i];
    n.failures = bad ? BAD_FAILURES : n.failures + 1;
    if (this.state(n) !== "bad") return;
    const repl = b.replacements.pop();
    // With no replacement the bad node keeps its slot (it may come back) but is never handed out (see closest()),
    // and the next newcomer takes it at once.
    if (repl) {
      b.nodes[i] = repl;
      b.lastChanged = this.now();
    }
  }

  remove(id: Buffer): void {
    const b = this.buckets[this.indexOf(id)];
    b.nodes = b.nodes.filter((n) => !n.id.equals(id));
  }

  /**
   * The `count` non-bad nodes closest to `target`, the hot path of every find_node/get_peers answer. With c the
   * bits `target` shares with our id: bucket c's nodes share more than c bits with it, the buckets after c share
   * exactly c, and each bucket i < c shares exactly i; so whole buckets are taken in that order and only
   * within a group is anything sorted.
   */
  closest(target: Buffer, count = K): TableNode[] {
    const out: TableNode[] = [];
    const take = (nodes: TableNode[]) => {
      const live = nodes.filter((n) => n.failures < BAD_FAILURES);
      if (out.length + live.length > count || live.length > 1)
        live.sort((a, b) => distance48(target, a.id) - distance48(target, b.id) || compareDistance(target, a.id, b.id));
      for (const n of live) if (out.length < count) out.push(n);
    };
    const last = this.buckets.length - 1;
    const c = Math.min(commonPrefixBits(this.id, target), last);
    take(this.buckets[c].nodes);
    if (c < last && out.length < count) take(this.buckets.slice(c + 1).flatMap((b) => b.nodes));
    for (let i = c - 1; i >= 0 && out.length < count; i--) take(this.buckets[i].nodes);
    return out;
  }

  all(): TableNode[] {
    return this.buckets.flatMap((b) => b.nodes);
  }

  /** Random ids to look up for buckets untouched for `maxAgeMs` (BEP 5's bucket refresh); they become fresh now. */
  staleBuckets(maxAgeMs: number, onlyNotFull = false): Buffer[] {
    const t = this.now();
    const out: Buffer[] = [];
    this.buckets.forEach((b, i) => {
      if (t - b.lastChanged < maxAgeMs || (onlyNotFull && b.nodes.length >= K)) return;
      b.lastChanged = t;
      // Bucket i < last covers "exactly i shared bits"; the last covers "at least i", so any id with i bits will do.
      out.push(randomIdWithPrefix(this.id, i));
    });
    return out;
  }
}
