/**
 * The RTMP handshake, server side (simple form): C0 (version 3) + C1 (1536 bytes) in, S0 + S1 + S2 out,
 * then C2 in. S1 carries a zero version field, which tells ffmpeg and librtmp (OBS) not to expect the
 * digest ("complex") handshake; S2 echoes C1 as the spec asks.
 */
import { randomBytes } from "node:crypto";

export const HANDSHAKE_SIZE = 1536;
export const RTMP_VERSION = 3;

export class HandshakeError extends Error {}

/** S0+S1+S2 for a received C0+C1 (1 + 1536 bytes). */
export function serverHello(c0c1: Buffer, now = Date.now()): Buffer {
  if (c0c1.length < 1 + HANDSHAKE_SIZE) throw new HandshakeError("short C0/C1");
  // Version 3 is RTMP; 6 is RTMPE (encrypted), which we do not speak.
  if (c0c1[0] !== RTMP_VERSION) throw new HandshakeError(`unsupported RTMP version ${c0c1[0]}`);
  const s1 = randomBytes(HANDSHAKE_SIZE);
  s1.writeUInt32BE(now >>> 0 || 1, 0);
  s1.writeUInt32BE(0, 4);
  const s2 = Buffer.from(c0c1.subarray(1, 1 + HANDSHAKE_SIZE));
  return Buffer.concat([Buffer.from([RTMP_VERSION]), s1, s2]);
}
