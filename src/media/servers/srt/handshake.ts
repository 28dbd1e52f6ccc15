/**
 * The SRT handshake (draft-sharabayko-srt, sections 3.2.1 and 4.3): is a datagram a handshake, what its
 * conclusion carries (Stream ID, HSREQ flags and latencies, KMREQ key material), our induction answer with the
 * cookie, our conclusion answer (HSRSP, KMRSP), and how to refuse a caller. Offsets are from the start of the UDP payload: a 16-byte header (destination
 * socket id at 12), then the handshake CIF (version 16, encryption/extension field 20, type 36, socket id 40,
 * SYN cookie 44).
 */

export const HS_INDUCTION = 1;
export const HS_CONCLUSION = 0xffffffff;
const EXT_HSREQ = 1;
const EXT_HSRSP = 2;
const EXT_KMREQ = 3;
const EXT_KMRSP = 4;
const EXT_SID = 5;
/** Extension flags of the conclusion's type field (CHandShake::HS_EXT_*). */
const HS_EXT_HSREQ = 1;
const HS_EXT_KMREQ = 2;
/** SRT_OPT_* flags of HSREQ/HSRSP. */
export const OPT = {
  TSBPDSND: 0x01,
  TSBPDRCV: 0x02,
  HAICRYPT: 0x04,
  TLPKTDROP: 0x08,
  NAKREPORT: 0x10,
  REXMITFLG: 0x20,
  STREAM: 0x40,
} as const;
/** The SRT version we announce (1.5.0): what the behaviour here follows. */
const SRT_VERSION = 0x010500;
const CIF_END = 16 + 48;
const DEST_ID = 12;
const TYPE_FIELD = 20;
const HS_TYPE = 36;
const SOCKET_ID = 40;
const COOKIE = 44;
/** Extension field of an HSv5 listener's induction response (SrtHSRequest::SRT_MAGIC_CODE). */
const SRT_MAGIC = 0x4a17;

export const cookieOf = (hs: Buffer): number => hs.readUInt32BE(COOKIE);
export const socketIdOf = (hs: Buffer): number => hs.readUInt32BE(SOCKET_ID);

/**
 * Our answer to a caller's induction, as libsrt's HSv5 listener answers: the request's CIF with version 5, the
 * SRT magic in the extension field (no PBKEYLEN advertised), our cookie, addressed to the caller's socket id.
 */
export function inductionResponse(req: Buffer, cookie: number, pbkeylen = 0): Buffer {
  const b = Buffer.from(req.subarray(0, CIF_END));
  b.writeUInt32BE(0x80000000, 0);
  b.writeUInt32BE(0, 4);
  b.writeUInt32BE(0, 8);
  b.writeUInt32BE(req.readUInt32BE(SOCKET_ID), DEST_ID);
  b.writeUInt32BE(5, 16);
  // The encryption field (upper 16 bits): the key length we advertise, in SRT_PBKEYLEN_BITS (bytes / 8).
  b.writeUInt32BE(((pbkeylen >>> 3) << 16) | SRT_MAGIC, TYPE_FIELD);
  b.writeUInt32BE(cookie >>> 0, COOKIE);
  return b;
}

export interface ConclusionAnswer {
  /** Our socket id for the session. */
  socketId: number;
  mtu: number;
  flowWindow: number;
  /** Our SRT flags and the negotiated latencies (ms): ours receiving (max of both), ours sending. */
  flags: number;
  rcvLatency: number;
  sndLatency: number;
  /** The KM message we echo when we could unwrap the caller's (KMRSP). */
  kmrsp: Buffer | undefined;
  /** The caller's IPv4 address as we saw it. */
  peerIp: string;
}

/**
 * The listener's conclusion response (HSv5): the caller's ISN echoed (libsrt checks it), the smaller MTU and
 * flow window, our socket id, and the HSRSP (and KMRSP) extensions, addressed to the caller's socket id.
 */
export function conclusionResponse(req: Buffer, a: ConclusionAnswer): Buffer {
  const km = a.kmrsp ? Buffer.concat([a.kmrsp, Buffer.alloc((4 - (a.kmrsp.length % 4)) % 4)]) : undefined;
  const b = Buffer.alloc(CIF_END + 16 + (km ? 4 + km.length : 0));
  req.copy(b, 0, 0, CIF_END);
  b.writeUInt32BE(0x80000000, 0);
  b.writeUInt32BE(0, 4);
  b.writeUInt32BE(0, 8);
  b.writeUInt32BE(req.readUInt32BE(SOCKET_ID), DEST_ID);
  b.writeUInt32BE(5, 16);
  b.writeUInt32BE(HS_EXT_HSREQ | (km ? HS_EXT_KMREQ : 0), TYPE_FIELD);
  b.writeUInt32BE(a.mtu, 28);
  b.writeUInt32BE(a.flowWindow, 32);
  b.writeUInt32BE(HS_CONCLUSION, HS_TYPE);
  b.writeUInt32BE(a.socketId >>> 0, SOCKET_ID);
  b.fill(0, 48, CIF_END);
  // libsrt keeps an IPv4 address as the in_addr word and sends that word byte-swapped.
  const ip = a.peerIp
    .replace(/^::ffff:/, "")
    .split(".")
    .map(Number);
  if (ip.length === 4) for (let i = 0; i < 4; i++) b[48 + i] = ip[3 - i] ?? 0;
  let off = CIF_END;
  b.writeUInt16BE(EXT_HSRSP, off);
  b.writeUInt16BE(3, off + 2);
  b.writeUInt32BE(SRT_VERSION, off + 4);
  b.writeUInt32BE(a.flags, off + 8);
  b.writeUInt32BE(((a.rcvLatency & 0xffff) << 16) | (a.sndLatency & 0xffff), off + 12);
  off += 16;
  if (km) {
    b.writeUInt16BE(EXT_KMRSP, off);
    b.writeUInt16BE(km.length / 4, off + 2);
    km.copy(b, off + 4);
  }
  return b;
}

export interface Handshake {
  version: number;
  type: number;
  streamId: string | undefined;
  /** The caller's initial sequence number, MTU, flow window and socket id. */
  isn: number;
  mtu: number;
  flowWindow: number;
  socketId: number;
  /** HSREQ: the caller's SRT version, flags, and latencies (ms) for its receiving and its sending side. */
  hsreq: { version: number; flags: number; rcvLatency: number; sndLatency: number } | undefined;
  /** KMREQ: the caller's key material message (it encrypts). */
  kmreq: Buffer | undefined;
}

/**
 * Rejection reasons: libsrt's own (SRT_REJ_*) and access control's (SRT_REJX_*, srt/access_control.h: 1000 + the
 * HTTP status they mirror), so a caller's srt_getrejectreason() says why, and ffmpeg fails with "connection
 * rejected" instead of timing out.
 */
export const REJ = {
  /** SRT_REJ_BADSECRET: the caller's passphrase is not ours. */
  BAD_SECRET: 10,
  /** SRT_REJ_UNSECURE: one side encrypts and the other does not. */
  UNSECURE: 11,
  BAD_REQUEST: 1400,
  UNAUTHORIZED: 1401,
  OVERLOAD: 1402,
  FORBIDDEN: 1403,
  NOT_FOUND: 1404,
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
  let hsreq: Handshake["hsreq"];
  let kmreq: Buffer | undefined;
  for (let off = CIF_END; off + 4 <= b.length; ) {
    const ext = b.readUInt16BE(off);
    const len = b.readUInt16BE(off + 2) * 4;
    if (off + 4 + len > b.length) break;
    const body = b.subarray(off + 4, off + 4 + len);
    if (ext === EXT_SID) streamId = decodeStreamId(body);
    else if (ext === EXT_HSREQ && len >= 12) {
      const lat = body.readUInt32BE(8);
      hsreq = {
        version: body.readUInt32BE(0),
        flags: body.readUInt32BE(4),
        rcvLatency: lat >>> 16,
        sndLatency: lat & 0xffff,
      };
    } else if (ext === EXT_KMREQ) kmreq = Buffer.from(body);
    off += 4 + len;
  }
  return {
    version,
    type,
    streamId,
    isn: b.readUInt32BE(24) & 0x7fffffff,
    mtu: b.readUInt32BE(28),
    flowWindow: b.readUInt32BE(32),
    socketId: b.readUInt32BE(SOCKET_ID),
    hsreq,
    kmreq,
  };
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
