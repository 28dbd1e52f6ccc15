/**
 * KRPC (BEP 5): bencoded dictionaries over UDP, one message per datagram. `y` is "q" (query), "r" (response) or
 * "e" (error); `t` is the querier's transaction id, echoed back. Decoding never throws: a datagram is either a
 * valid message or a `Malformed` carrying the transaction id when one could be read, so the node can answer
 * 203 (protocol error) to a real peer that sent nonsense and stay silent to garbage.
 */
import { type BDict, type BInput, bget, decode, encode, isDict } from "../bencode.ts";
import { isId } from "./id.ts";

/** The biggest datagram we read; real KRPC messages fit one Ethernet frame, a get_peers answer ~1.4 KB at most. */
export const MAX_DATAGRAM = 4096;
/** Transaction ids longer than this are refused (they are echoed, so an attacker would choose our reply size). */
const MAX_TID = 16;

export const KrpcError = {
  generic: 201,
  server: 202,
  protocol: 203,
  methodUnknown: 204,
} as const;

export type Method = "ping" | "find_node" | "get_peers" | "announce_peer";
const methods: ReadonlySet<string> = new Set(["ping", "find_node", "get_peers", "announce_peer"]);

export interface Query {
  y: "q";
  t: Buffer;
  q: Method;
  id: Buffer;
  /** BEP 43: the querier is read-only and must not be added to routing tables. */
  ro: boolean;
  target?: Buffer;
  infoHash?: Buffer;
  port?: number;
  impliedPort?: boolean;
  token?: Buffer;
}
export interface Response {
  y: "r";
  t: Buffer;
  id: Buffer;
  r: BDict;
}
export interface ErrorMsg {
  y: "e";
  t: Buffer;
  code: number;
  message: string;
}
export type Message = Query | Response | ErrorMsg;
export interface Malformed {
  y: "bad";
  /** Present when the datagram was a dictionary with a usable `t`: worth an error reply. */
  t?: Buffer;
  code: number;
  reason: string;
}

export function decodeMessage(buf: Buffer): Message | Malformed {
  if (buf.length === 0 || buf.length > MAX_DATAGRAM) return { y: "bad", code: 203, reason: "datagram size" };
  let v: ReturnType<typeof decode>;
  try {
    v = decode(buf);
  } catch {
    return { y: "bad", code: 203, reason: "not bencode" };
  }
  if (!isDict(v)) return { y: "bad", code: 203, reason: "not a dictionary" };
  const t = bget.bytes(v, "t");
  if (!t || t.length === 0 || t.length > MAX_TID) return { y: "bad", code: 203, reason: "bad transaction id" };
  const bad = (code: number, reason: string): Malformed => ({ y: "bad", t, code, reason });
  const y = bget.str(v, "y");
  if (y === "r") {
    const r = bget.dict(v, "r");
    const id = bget.bytes(r, "id");
    if (!r || !isId(id)) return bad(203, "response without a 20-byte id");
    return { y: "r", t, id, r };
  }
  if (y === "e") {
    const e = bget.list(v, "e");
    const code = e?.[0];
    const msg = e?.[1];
    return {
      y: "e",
      t,
      code: typeof code === "number" ? code : 201,
      message: Buffer.isBuffer(msg) ? msg.toString("utf8").slice(0, 200) : "",
    };
  }
  if (y !== "q") return bad(203, "bad message type");
  const q = bget.str(v, "q");
  const a = bget.dict(v, "a");
  if (q === undefined || !a) return bad(203, "query without method or arguments");
  if (!methods.has(q)) return bad(204, "Method Unknown");
  const id = bget.bytes(a, "id");
  if (!isId(id)) return bad(203, "bad id");
  const query: Query = { y: "q", t, q: q as Method, id, ro: bget.int(v, "ro") === 1 };
  if (q === "find_node") {
    const target = bget.bytes(a, "target");
    if (!isId(target)) return bad(203, "bad target");
    query.target = target;
  } else if (q === "get_peers" || q === "announce_peer") {
    const infoHash = bget.bytes(a, "info_hash");
    if (!isId(infoHash)) return bad(203, "bad info_hash");
    query.infoHash = infoHash;
  }
  if (q === "announce_peer") {
    const token = bget.bytes(a, "token");
    if (!token || token.length > 64) return bad(203, "bad token");
    query.token = token;
    query.impliedPort = bget.int(a, "implied_port") === 1;
    const port = bget.int(a, "port");
    if (!query.impliedPort && (port === undefined || port < 1 || port > 65535)) return bad(203, "bad port");
    query.port = port;
  }
  return query;
}

/** Our client version (BEP 20 style: two letters and two version bytes). */
const VERSION = Buffer.from([0x41, 0x4d, 0x00, 0x01]); // "AM" 0.1

export function encodeQuery(t: Buffer, q: Method, a: Record<string, BInput | undefined>, ro = false): Buffer {
  return encode({ t, y: "q", q, a, v: VERSION, ro: ro ? 1 : undefined });
}

/** `ip` is the requester's compact address, which BEP 42 asks responders to echo. */
export function encodeResponse(t: Buffer, r: Record<string, BInput | undefined>, ip?: Buffer): Buffer {
  return encode({ t, y: "r", r, v: VERSION, ip });
}

export function encodeError(t: Buffer, code: number, message: string): Buffer {
  return encode({ t, y: "e", e: [code, message] });
}
