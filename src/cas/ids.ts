/**
 * Identifiers: SHA-256 hex for chunks, manifests (the object id) and whole files, and a CIDv1 for the whole
 * file's plain SHA-256 (raw codec 0x55, multihash sha2-256 0x12 length 0x20, multibase base32 lower 'b'), so
 * the same bytes have the same CID as in IPFS/IPLD tooling for a single raw block.
 */
import { createHash } from "node:crypto";

export const sha256Hex = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/**
 * The same, off the main thread: WebCrypto's digest runs in libuv's thread pool, so chunk hashes run on the
 * other cores while the main thread cuts chunks (put) or hands out verified ones (get).
 */
export const sha256HexAsync = async (b: Uint8Array): Promise<string> =>
  Buffer.from(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>)).toString("hex");

export const isHex64 = (s: string): boolean => /^[0-9a-f]{64}$/.test(s);

const B32 = "abcdefghijklmnopqrstuvwxyz234567";

/** RFC 4648 base32, lower case, no padding (multibase 'b'). */
export function base32Lower(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

export function cidFromSha256(hex: string): string {
  const digest = Buffer.from(hex, "hex");
  // version 1, codec raw (0x55), multihash: sha2-256 (0x12), 32 bytes (0x20); all one-byte varints.
  return `b${base32Lower(Buffer.concat([Buffer.from([0x01, 0x55, 0x12, 0x20]), digest]))}`;
}

export function sha256FromCid(cid: string): string | undefined {
  if (!/^b[a-z2-7]+$/.test(cid)) return undefined;
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const c of cid.slice(1)) {
    value = (value << 5) | B32.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
      value &= (1 << bits) - 1;
    }
  }
  const b = Buffer.from(out);
  if (b.length !== 36 || b[0] !== 1 || b[1] !== 0x55 || b[2] !== 0x12 || b[3] !== 0x20) return undefined;
  return b.subarray(4).toString("hex");
}
