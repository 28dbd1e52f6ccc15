/**
 * Answers to other nodes' queries (BEP 5). get_peers hands out a token bound to the asker's IP; announce_peer is
 * accepted only with such a token, so nobody can store peers for an IP it does not receive datagrams on.
 * With `implied_port` the peer's port is the UDP source port (BEP 5, for peers behind NAT using uTP).
 */
import { encodeNodes, encodePeer, isUsableAddr, type NodeAddr } from "./id.ts";
import { encodeError, encodeResponse, KrpcError, type Query } from "./krpc.ts";
import type { PeerStore } from "./peers.ts";
import { K, type RoutingTable } from "./routing.ts";
import type { TokenSecrets } from "./tokens.ts";

/** Compact peers in one get_peers answer: 25 × 8 bencoded bytes ≈ K compact nodes (8 × 26). */
export const MAX_VALUES = 25;

export interface QueryContext {
  id: Buffer;
  table: RoutingTable;
  peers: PeerStore;
  tokens: TokenSecrets;
}

export function handleQuery(ctx: QueryContext, m: Query, from: NodeAddr): { kind: "response" | "error"; msg: Buffer } {
  const ip = isUsableAddr(from.host, from.port) ? encodePeer(from) : undefined;
  const ok = (r: Record<string, Buffer | Buffer[] | undefined>) => ({
    kind: "response" as const,
    msg: encodeResponse(m.t, { id: ctx.id, ...r }, ip),
  });
  const nodes = (target: Buffer) => encodeNodes(ctx.table.closest(target, K).filter((n) => !n.id.equals(m.id)));
  switch (m.q) {
    case "ping":
      return ok({});
    case "find_node":
      return ok({ nodes: nodes(m.target as Buffer) });
    case "get_peers": {
      const ih = m.infoHash as Buffer;
      // Peers or nodes, as BEP 5 says, never both, and at most as many peers as fit in a find_node answer's
      // size: the querier's address may be spoofed, and the answer must not buy a reflection much bigger than
      // the ~100-byte query (≈3×, like find_node; 50 peers plus nodes was ≈7×).
      const values = ctx.peers.get(ih, MAX_VALUES).map(encodePeer);
      return ok({
        token: ctx.tokens.issue(from.host),
        values: values.length ? values : undefined,
        nodes: values.length ? undefined : nodes(ih),
      });
    }
    case "announce_peer": {
      if (!ctx.tokens.check(m.token as Buffer, from.host))
        return { kind: "error", msg: encodeError(m.t, KrpcError.protocol, "Bad token") };
      const port = m.impliedPort ? from.port : (m.port as number);
      if (!isUsableAddr(from.host, port))
        return { kind: "error", msg: encodeError(m.t, KrpcError.protocol, "Bad port") };
      ctx.peers.add(m.infoHash as Buffer, { host: from.host, port });
      return ok({});
    }
  }
}
