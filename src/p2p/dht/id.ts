/**
 * Node ids and the compact encodings of BEP 5: 20-byte ids in one 160-bit XOR metric space, "compact node info"
 * (id + IPv4 + port, 26 bytes) and "compact peer info" (IPv4 + port, 6 bytes). IPv6 (BEP 32) is not spoken.
 *
 * BEP 42 (ids derived from the node's IP) is not enforced: on loopback and in tests every node shares one IP, and
 * enforcing it only pays off against a Sybil attacker on the public DHT, which is off by default here.
 */
import { randomBytes } from "node:crypto";
import { isIPv4 } from "node:net";

export const ID_BYTES = 20;
export const ID_BITS = 160;

export interface NodeAddr {
  host: string;
  port: number;
}
export interface NodeInfo extends NodeAddr {
  id: Buffer;
}

export const randomId = (): Buffer => randomBytes(ID_BYTES);

export const isId = (b: unknown): b is Buffer => Buffer.isBuffer(b) && b.length === ID_BYTES;

/** XOR distance of a and b to `target`: negative when a is closer. */
export function compareDistance(target: Buffer, a: Buffer, b: Buffer): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const da = a[i] ^ target[i];
    const db = b[i] ^ target[i];
    if (da !== db) return da - db;
  }
  return 0;
}

/** The first 48 bits of the XOR distance as a number (exact in a double): a cheap sort key, ties need compareDistance. */
export function distance48(target: Buffer, id: Buffer): number {
  const hi = (target.readUInt32BE(0) ^ id.readUInt32BE(0)) >>> 0;
  const lo = (target.readUInt16BE(4) ^ id.readUInt16BE(4)) >>> 0;
  return hi * 65536 + lo;
}

/** Number of leading bits a and b share (160 when equal). */
export function commonPrefixBits(a: Buffer, b: Buffer): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const x = a[i] ^ b[i];
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return ID_BITS;
}

/** A random id sharing exactly `bits` leading bits with `id` (the id a bucket refresh looks up). */
export function randomIdWithPrefix(id: Buffer, bits: number): Buffer {
  const out = randomBytes(ID_BYTES);
  if (bits >= ID_BITS) return Buffer.from(id);
  const whole = bits >> 3;
  id.copy(out, 0, 0, whole);
  const rem = bits & 7;
  // Bits [0, rem) of byte `whole` come from id, bit `rem` is flipped, the rest stay random.
  const keep = (0xff00 >> rem) & 0xff;
  const flip = 0x80 >> rem;
  out[whole] = (id[whole] & keep) | (~id[whole] & flip) | (out[whole] & ~(keep | flip) & 0xff);
  return out;
}

export const addrKey = (a: NodeAddr): string => `${a.host}:${a.port}`;

/** A usable unicast IPv4 endpoint (not 0.0.0.0, not broadcast, port 1..65535). */
export function isUsableAddr(host: string, port: number): boolean {
  return (
    isIPv4(host) &&
    host !== "0.0.0.0" &&
    host !== "255.255.255.255" &&
    Number.isInteger(port) &&
    port > 0 &&
    port < 65536
  );
}

function writeAddr(buf: Buffer, at: number, host: string, port: number): void {
  const parts = host.split(".");
  for (let i = 0; i < 4; i++) buf[at + i] = Number(parts[i]);
  buf.writeUInt16BE(port, at + 4);
}
const readAddr = (buf: Buffer, at: number): NodeAddr => ({
  host: `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`,
  port: buf.readUInt16BE(at + 4),
});

export function encodePeer(p: NodeAddr): Buffer {
  const b = Buffer.alloc(6);
  writeAddr(b, 0, p.host, p.port);
  return b;
}

/** A 6-byte compact peer, or undefined when it is not one or names no usable endpoint. */
export function decodePeer(b: unknown): NodeAddr | undefined {
  if (!Buffer.isBuffer(b) || b.length !== 6) return undefined;
  const a = readAddr(b, 0);
  return isUsableAddr(a.host, a.port) ? a : undefined;
}

export function encodeNodes(nodes: readonly NodeInfo[]): Buffer {
  const b = Buffer.alloc(nodes.length * 26);
  nodes.forEach((n, i) => {
    n.id.copy(b, i * 26);
    writeAddr(b, i * 26 + 20, n.host, n.port);
  });
  return b;
}

/** Compact node infos; a trailing partial entry and unusable endpoints are skipped. */
export function decodeNodes(b: Buffer): NodeInfo[] {
  const out: NodeInfo[] = [];
  for (let at = 0; at + 26 <= b.length; at += 26) {
    const a = readAddr(b, at + 20);
    if (isUsableAddr(a.host, a.port)) out.push({ id: Buffer.from(b.subarray(at, at + 20)), ...a });
  }
  return out;
}
