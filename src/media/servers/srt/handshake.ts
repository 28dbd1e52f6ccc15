/**
 * Just enough of the SRT wire format (draft-sharabayko-srt, section 3) to route a caller: is a datagram a
 * handshake, which Stream ID (SRT_CMD_SID extension) does its conclusion carry, how to answer an induction with
 * our cookie, and how to refuse it. Offsets are from the start of the UDP payload: a 16-byte header (destination
 * socket id at 12), then the handshake CIF (version 16, encryption/extension field 20, type 36, socket id 40,
 * SYN cookie 44).
 */

export const HS_INDUCTION = 1;
export const HS_CONCLUSION = 0xffffffff;
const EXT_SID = 5;
const CIF_END = 16 + 48;
const DEST_ID = 12;
const TYPE_FIELD = 20;
const HS_TYPE = 36;
const SOCKET_ID = 40;
const COOKIE = 44;
/** Extension field of an HSv5 listener's induction response (SrtHSRequest::SRT_MAGIC_CODE). */
const SRT_MAGIC = 0x4a17;
/** Type field of an HSv4-style induction request: UDT_DGRAM. */
const UDT_DGRAM = 2;

export const cookieOf = (hs: Buffer): number => hs.readUInt32BE(COOKIE);
export const socketIdOf = (hs: Buffer): number => hs.readUInt32BE(SOCKET_ID);

/** A copy of handshake `hs` carrying `cookie` (the relay swaps ours and ffmpeg's). */
export function withCookie(hs: Buffer, cookie: number): Buffer {
  const b = Buffer.from(hs);
  b.writeUInt32BE(cookie >>> 0, COOKIE);
  return b;
}

/**
 * Our answer to a caller's induction, as libsrt's HSv5 listener answers: the request's CIF with version 5, the
 * SRT magic in the extension field (no PBKEYLEN advertised), our cookie, addressed to the caller's socket id.
 */
export function inductionResponse(req: Buffer, cookie: number): Buffer {
  const b = Buffer.from(req.subarray(0, CIF_END));
  b.writeUInt32BE(0x80000000, 0);
  b.writeUInt32BE(0, 4);
  b.writeUInt32BE(0, 8);
  b.writeUInt32BE(req.readUInt32BE(SOCKET_ID), DEST_ID);
  b.writeUInt32BE(5, 16);
  b.writeUInt32BE(SRT_MAGIC, TYPE_FIELD);
  b.writeUInt32BE(cookie >>> 0, COOKIE);
  return b;
}

/**
 * The induction a caller with conclusion `c` would have sent (version 4, UDT_DGRAM, no cookie): what our relay
 * sends a session's ffmpeg to learn its cookie before handing it the caller's conclusion.
 */
export function inductionRequest(c: Buffer): Buffer {
  const b = Buffer.from(c.subarray(0, CIF_END));
  b.writeUInt32BE(0, DEST_ID);
  b.writeUInt32BE(4, 16);
  b.writeUInt32BE(UDT_DGRAM, TYPE_FIELD);
  b.writeUInt32BE(HS_INDUCTION, HS_TYPE);
  b.writeUInt32BE(0, COOKIE);
  return b;
}

export interface Handshake {
  version: number;
  type: number;
  streamId: string | undefined;
}

/**
 * Access-control rejection reasons (SRT_REJX_*, srt/access_control.h): 1000 + the HTTP status they mirror, so a
 * caller's srt_getrejectreason() says why, and ffmpeg fails with "connection rejected" instead of timing out.
 */
export const REJ = {
  BAD_REQUEST: 1400,
  UNAUTHORIZED: 1401,
  OVERLOAD: 1402,
  FORBIDDEN: 1403,
  BAD_MODE: 1405,
  CONFLICT: 1409,
} as const;

/** On the wire a rejection is a handshake whose Handshake Type is 1000 + the reason (libsrt's URQFailure). */
const URQ_FAILURE_TYPES = 1000;

/**
 * The handshake refusing a caller's handshake `req` (induction or conclusion) with `reason`: addressed to the
 * caller's socket id (CIF offset 24), no extensions.
 */
export function rejection(req: Buffer, reason: number): Buffer {
  const b = Buffer.from(req.subarray(0, CIF_END));
  b.writeUInt32BE(0x80000000, 0); // control packet, type 0: handshake
  b.writeUInt32BE(0, 4);
  b.writeUInt32BE(req.readUInt32BE(16 + 24), 12);
  b.writeUInt32BE(0, 20); // encryption and extension flags: none
  b.writeUInt32BE(URQ_FAILURE_TYPES + reason, 36);
  return b;
}

/** The rejection reason in a handshake we received (a caller's view), or undefined when it is not one. */
export function rejectReason(b: Buffer): number | undefined {
  if (!parseHandshake(b)) return undefined;
  const type = b.readUInt32BE(36);
  return type > URQ_FAILURE_TYPES && type < 0x80000000 ? type - URQ_FAILURE_TYPES : undefined;
}

/** The handshake in a datagram, or undefined when it is not an SRT handshake control packet. */
export function parseHandshake(b: Buffer): Handshake | undefined {
  if (b.length < CIF_END) return undefined;
  const w0 = b.readUInt32BE(0);
  // Control bit set, control type 0 (handshake).
  if (w0 >>> 31 !== 1 || ((w0 >>> 16) & 0x7fff) !== 0) return undefined;
  const version = b.readUInt32BE(16);
  if (version !== 4 && version !== 5) return undefined;
  const type = b.readUInt32BE(36);
  let streamId: string | undefined;
  for (let off = CIF_END; off + 4 <= b.length; ) {
    const ext = b.readUInt16BE(off);
    const len = b.readUInt16BE(off + 2) * 4;
    if (off + 4 + len > b.length) break;
    if (ext === EXT_SID) streamId = decodeStreamId(b.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return { version, type, streamId };
}

/** SRT stores the Stream ID as 32-bit words with each word's bytes reversed; padded with NULs. */
export function decodeStreamId(b: Buffer): string {
  const out = Buffer.alloc(b.length - (b.length % 4));
  for (let i = 0; i < out.length; i += 4) for (let j = 0; j < 4; j++) out[i + j] = b[i + 3 - j] ?? 0;
  return out.toString("utf8").replace(/\0+$/, "");
}

export function encodeStreamId(s: string): Buffer {
  const raw = Buffer.from(s, "utf8");
  const b = Buffer.alloc(Math.ceil(raw.length / 4) * 4);
  raw.copy(b);
  const out = Buffer.alloc(b.length);
  for (let i = 0; i < b.length; i += 4) for (let j = 0; j < 4; j++) out[i + j] = b[i + 3 - j] ?? 0;
  return out;
}

/**
 * The path a Stream ID publishes to: `publish:<path>`, the SRT access-control form `#!::r=<path>,m=publish`,
 * or a bare path. Anything else (e.g. `read:...`) is undefined: SRT here is ingest only.
 */
export function publishPath(streamId: string | undefined): string | undefined {
  if (!streamId) return undefined;
  if (streamId.startsWith("#!::")) {
    const kv = Object.fromEntries(
      streamId
        .slice(4)
        .split(",")
        .map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]),
    );
    return (kv.m ?? "publish") === "publish" ? kv.r : undefined;
  }
  const i = streamId.indexOf(":");
  if (i < 0) return streamId;
  return streamId.slice(0, i) === "publish" ? streamId.slice(i + 1) : undefined;
}
