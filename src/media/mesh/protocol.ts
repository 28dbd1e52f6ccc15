/**
 * The viewer mesh's signalling messages (JSON text frames on `/_ami/mesh?path=<stream path>`). The server only
 * introduces peers, relays their SDP/ICE and takes their counters; which segments a peer holds is said between
 * the peers themselves, over their data channel (mesh.js), so segment chatter never passes through the server.
 *
 * viewer → server: `{t:"signal", to, data}` (an SDP or ICE candidate for a linked peer), `{t:"stats", peer, http,
 * rejected}` (cumulative bytes of segments from peers and over HTTP, peer segments refused by hash),
 * `{t:"bad", id}` (that peer sent a segment whose hash was wrong: unlink, never link again).
 * server → viewer: `{t:"welcome", id, ice, waitMs}`, `{t:"peer", id, offer}` (a new link; `offer`: this side
 * makes the offer), `{t:"signal", from, data}`, `{t:"gone", id}`.
 */

export const MESH_PATH = "/_ami/mesh";

/** Close codes: 1003 binary, 1009 too big (ws itself), 4400 malformed, 4429 over the rate limit. */
export const MeshClose = {
  goingAway: 1001,
  unsupportedData: 1003,
  badInput: 4400,
  rateLimited: 4429,
} as const;

export type ClientMessage =
  | { t: "signal"; to: string; data: Record<string, unknown> }
  | { t: "stats"; peer: number; http: number; rejected: number }
  | { t: "bad"; id: string };

const ID = /^[0-9a-f]{16}$/;
const count = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** A client frame, or a reason it is not one (the socket is then closed with badInput). */
export function parseClientMessage(text: string): ClientMessage | string {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return "not JSON";
  }
  if (typeof m !== "object" || m === null || Array.isArray(m)) return "not an object";
  const o = m as Record<string, unknown>;
  switch (o.t) {
    case "signal": {
      const data = o.data;
      if (typeof o.to !== "string" || !ID.test(o.to)) return "signal: bad 'to'";
      if (typeof data !== "object" || data === null || Array.isArray(data)) return "signal: 'data' must be an object";
      return { t: "signal", to: o.to, data: data as Record<string, unknown> };
    }
    case "stats":
      if (!count(o.peer) || !count(o.http) || !count(o.rejected)) return "stats: counts must be non-negative integers";
      return { t: "stats", peer: o.peer, http: o.http, rejected: o.rejected };
    case "bad":
      if (typeof o.id !== "string" || !ID.test(o.id)) return "bad: bad 'id'";
      return { t: "bad", id: o.id };
    default:
      return "unknown message type";
  }
}
