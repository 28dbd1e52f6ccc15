/**
 * The iterative Kademlia lookup (BEP 5's find_node / get_peers walk): keep the K closest nodes heard of, query
 * the closest not yet asked, ALPHA at a time, and stop when the K closest have all answered or failed. Every node
 * learned from a response is one hop further than the node that named it (seeds are hop 1), which is how the
 * simulation measures hops.
 */
import { compareDistance, distance48, type NodeAddr, type NodeInfo } from "./id.ts";
import { isLoopback } from "./local.ts";

export const ALPHA = 3;
/** Nodes at one IP a walk may ask (as the routing table keeps, dht.ts nodesPerIp). */
const MAX_PER_HOST = 2;

/** What one queried node told us. */
export interface Answer {
  id: Buffer;
  nodes: NodeInfo[];
  values: NodeAddr[];
  token?: Buffer;
}

export interface Responder extends NodeInfo {
  token?: Buffer;
  hops: number;
}

export interface LookupResult {
  /** The K closest nodes that answered, closest first (with their tokens for announce_peer). */
  closest: Responder[];
  /** Hop of the first node that returned peers, or else of the closest node that answered (0 if none did). */
  hops: number;
  /** Queries sent. */
  queried: number;
  peers: number;
}

interface Candidate {
  addr: NodeAddr;
  id?: Buffer;
  /** distance48 to the target (when the id is known). */
  d: number;
  hops: number;
  state: "new" | "asked" | "answered" | "failed";
  /** Asked more than slowMs ago: no longer holds one of the ALPHA slots, and the walk may end without it. */
  slow?: boolean;
  token?: Buffer;
}

export interface LookupOptions {
  target: Buffer;
  /** Known nodes (ids known) and bootstrap addresses (ids unknown: asked first). */
  seeds: Array<NodeInfo | NodeAddr>;
  ask: (to: NodeAddr) => Promise<Answer | null>;
  onPeer?: (p: NodeAddr) => void;
  selfId: Buffer;
  k: number;
  alpha?: number;
  signal?: AbortSignal;
  maxCandidates?: number;
  /** After this long an unanswered query stops blocking the walk (a dead node costs slowMs, not a full timeout). */
  slowMs?: number;
  /** Hosts exempt from the per-host cap (default: loopback; a UDP node adds this machine's own addresses). */
  exempt?: (host: string) => boolean;
}

export function iterativeLookup(o: LookupOptions): Promise<LookupResult> {
  const alpha = o.alpha ?? ALPHA;
  const maxCandidates = o.maxCandidates ?? 256;
  const exempt = o.exempt ?? isLoopback;
  const cands = new Map<string, Candidate>();
  const ids = new Set<string>([o.selfId.toString("hex")]);
  const seenPeers = new Set<string>();
  /** Queries in flight that still hold an ALPHA slot. */
  let inflight = 0;
  let queried = 0;
  let peerHops = 0;

  /** Candidates per host: a liar naming many "nodes" at one address would otherwise aim our queries at a victim. */
  const perHost = new Map<string, number>();
  const addCandidate = (addr: NodeAddr, id: Buffer | undefined, hops: number) => {
    const key = `${addr.host}:${addr.port}`;
    if (cands.has(key) || cands.size >= maxCandidates) return;
    const onHost = perHost.get(addr.host) ?? 0;
    // Loopback (and on UDP this machine's own addresses) is exempt: only local processes answer there.
    if (onHost >= MAX_PER_HOST && !exempt(addr.host)) return;
    if (id) {
      const h = id.toString("hex");
      if (ids.has(h)) return;
      ids.add(h);
    }
    perHost.set(addr.host, onHost + 1);
    cands.set(key, {
      addr: { host: addr.host, port: addr.port },
      id,
      d: id ? distance48(o.target, id) : 0,
      hops,
      state: "new",
    });
  };
  for (const s of o.seeds) addCandidate(s, "id" in s ? s.id : undefined, 1);

  // Unknown ids (bootstrap addresses) sort first: they are all we have.
  const order = (a: Candidate, b: Candidate) =>
    !a.id ? (!b.id ? 0 : -1) : !b.id ? 1 : a.d - b.d || compareDistance(o.target, a.id, b.id);

  return new Promise<LookupResult>((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      o.signal?.removeEventListener("abort", finish);
      const answered = [...cands.values()].filter((c) => c.state === "answered" && c.id).sort(order);
      const closest = answered.slice(0, o.k).map((c) => ({
        id: c.id as Buffer,
        host: c.addr.host,
        port: c.addr.port,
        token: c.token,
        hops: c.hops,
      }));
      resolve({ closest, hops: peerHops || (closest[0]?.hops ?? 0), queried, peers: seenPeers.size });
    };
    o.signal?.addEventListener("abort", finish, { once: true });

    const pump = () => {
      if (finished) return;
      if (o.signal?.aborted) return finish();
      const live = [...cands.values()].filter((c) => c.state !== "failed" && !c.slow).sort(order);
      const top = live.slice(0, o.k);
      for (const c of top) {
        if (inflight >= alpha) break;
        if (c.state === "new") ask(c);
      }
      if (inflight === 0 && !top.some((c) => c.state === "new") && !waitingForSlow()) finish();
    };

    /**
     * A slow query among the K closest stops holding a slot, but until some peer is found the walk does not end
     * without its answer: on a loaded machine a live node (maybe the one holding the peers) answers late, and
     * ending early missed it (79/80 lookups after churn in a CI run). Dead nodes then cost the full query timeout.
     */
    const waitingForSlow = () =>
      seenPeers.size === 0 &&
      [...cands.values()]
        .filter((c) => c.state !== "failed")
        .sort(order)
        .slice(0, o.k)
        .some((c) => c.slow && c.state === "asked");

    const ask = (c: Candidate) => {
      c.state = "asked";
      inflight++;
      queried++;
      const slow = o.slowMs
        ? setTimeout(() => {
            if (c.state !== "asked") return;
            c.slow = true;
            inflight--;
            pump();
          }, o.slowMs)
        : undefined;
      o.ask(c.addr).then(
        (a) => settle(c, a, slow),
        () => settle(c, null, slow),
      );
    };

    const settle = (c: Candidate, a: Answer | null, slow: NodeJS.Timeout | undefined) => {
      clearTimeout(slow);
      if (!c.slow) inflight--;
      c.slow = false;
      if (!a || (c.id && !a.id.equals(c.id))) c.state = "failed";
      else {
        c.state = "answered";
        if (!c.id) {
          const h = a.id.toString("hex");
          // A bootstrap node we already know under its id (or our own address): keep one entry.
          if (ids.has(h)) c.state = "failed";
          ids.add(h);
          c.id = a.id;
          c.d = distance48(o.target, a.id);
        }
        c.token = a.token;
        for (const p of a.values) {
          const key = `${p.host}:${p.port}`;
          if (seenPeers.has(key)) continue;
          seenPeers.add(key);
          if (!peerHops) peerHops = c.hops;
          o.onPeer?.(p);
        }
        for (const n of a.nodes) addCandidate(n, n.id, c.hops + 1);
      }
      pump();
    };

    pump();
  });
}
