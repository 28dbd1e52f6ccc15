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

/** What a peer may relay: a session description or an ICE candidate, with only the fields WebRTC defines. */
export type SignalData =
  | { sdp: { type: string; sdp: string } }
  | {
      candidate: {
        candidate: string;
        sdpMid?: string | null;
        sdpMLineIndex?: number | null;
        usernameFragment?: string | null;
      };
    };

export type ClientMessage =
  | { t: "signal"; to: string; data: SignalData }
  | { t: "stats"; peer: number; http: number; rejected: number }
  | { t: "bad"; id: string };

const ID = /^[0-9a-f]{16}$/;
const count = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

const SDP_TYPES = new Set(["offer", "answer", "pranswer", "rollback"]);
const optString = (v: unknown): v is string | null | undefined =>
  v === undefined || v === null || typeof v === "string";
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The relayed payload rebuilt from its known fields: anything else (extra fields, nesting deep enough to overflow
 * JSON.stringify's stack when relayed, fields a peer's page might mistake for the server's) never leaves the server.
 */
function signalData(d: Record<string, unknown>): SignalData | string {
  if (isObject(d.sdp)) {
    const { type, sdp } = d.sdp;
    if (typeof type !== "string" || !SDP_TYPES.has(type) || typeof sdp !== "string") return "signal: bad 'sdp'";
    return { sdp: { type, sdp } };
  }
  if (isObject(d.candidate)) {
    const c = d.candidate;
    const line = c.sdpMLineIndex;
    if (typeof c.candidate !== "string" || !optString(c.sdpMid) || !optString(c.usernameFragment))
      return "signal: bad 'candidate'";
    if (
      line !== undefined &&
      line !== null &&
      !(Number.isInteger(line) && (line as number) >= 0 && (line as number) < 1024)
    )
      return "signal: bad 'candidate'";
    const out: {
      candidate: string;
      sdpMid?: string | null;
      sdpMLineIndex?: number | null;
      usernameFragment?: string | null;
    } = { candidate: c.candidate };
    if (c.sdpMid !== undefined) out.sdpMid = c.sdpMid;
    if (line !== undefined) out.sdpMLineIndex = line as number | null;
    if (c.usernameFragment !== undefined) out.usernameFragment = c.usernameFragment;
    return { candidate: out };
  }
  return "signal: 'data' must hold an 'sdp' or a 'candidate'";
}

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
      if (!isObject(data)) return "signal: 'data' must be an object";
      const d = signalData(data);
      return typeof d === "string" ? d : { t: "signal", to: o.to, data: d };
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
