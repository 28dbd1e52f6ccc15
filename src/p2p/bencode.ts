/**
 * Bencoding (BEP 3): the encoding of .torrent files, KRPC (DHT) messages and extension handshakes.
 *
 * Byte strings decode to Buffers. Dictionary keys decode to latin1 strings, so every key byte survives a round
 * trip and JavaScript's string order is the byte order BEP 3 sorts keys by (a UTF-8 file name in a v2 file tree
 * is `Buffer.from(key, "latin1").toString("utf8")`). Decoding is strict where a lax parser would let two
 * encodings of one value disagree (leading zeros, `-0`, duplicate keys) and bounded (depth, integer size); an
 * info dictionary's hash must be taken over its original bytes, which `decodeSpan` gives.
 */
import { AmiError } from "../core/errors.ts";

export type BValue = number | Buffer | BValue[] | BDict;
export interface BDict {
  [key: string]: BValue;
}
/** What `encode` takes: strings are written as UTF-8, undefined dictionary values are left out. */
export type BInput =
  | number
  | bigint
  | string
  | Uint8Array
  | readonly BInput[]
  | { readonly [key: string]: BInput | undefined };

const MAX_DEPTH = 64;

function fail(message: string, at: number): never {
  throw new AmiError("AMI_INVALID_INPUT", `bencode: ${message} at byte ${at}`);
}

export function encode(value: BInput): Buffer {
  const parts: Buffer[] = [];
  write(value, parts, 0);
  return Buffer.concat(parts);
}

function write(v: BInput, out: Buffer[], depth: number): void {
  if (depth > MAX_DEPTH) throw new AmiError("AMI_INVALID_INPUT", "bencode: nesting too deep");
  if (typeof v === "number" || typeof v === "bigint") {
    if (typeof v === "number" && !Number.isSafeInteger(v))
      throw new AmiError("AMI_INVALID_INPUT", `bencode: ${v} is not an integer`);
    out.push(Buffer.from(`i${v}e`));
  } else if (typeof v === "string") {
    const b = Buffer.from(v, "utf8");
    out.push(Buffer.from(`${b.length}:`), b);
  } else if (v instanceof Uint8Array) {
    out.push(Buffer.from(`${v.length}:`), Buffer.from(v.buffer, v.byteOffset, v.length));
  } else if (Array.isArray(v)) {
    out.push(Buffer.from("l"));
    for (const x of v as readonly BInput[]) write(x, out, depth + 1);
    out.push(Buffer.from("e"));
  } else {
    const dict = v as { readonly [key: string]: BInput | undefined };
    out.push(Buffer.from("d"));
    // Keys are latin1 strings (byte per char), so the default string sort is the byte order.
    for (const key of Object.keys(dict).sort()) {
      const x = dict[key];
      if (x === undefined) continue;
      const k = Buffer.from(key, "latin1");
      out.push(Buffer.from(`${k.length}:`), k);
      write(x, out, depth + 1);
    }
    out.push(Buffer.from("e"));
  }
}

/** Decode exactly one value that fills `buf` (trailing bytes are an error). */
export function decode(buf: Uint8Array): BValue {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const { value, end } = decodeAt(b, 0);
  if (end !== b.length) fail("trailing data", end);
  return value;
}

/** Decode one value starting at `start`; `end` is the offset just past it (for messages followed by raw bytes, as in BEP 9). */
export function decodeAt(buf: Buffer, start: number): { value: BValue; end: number } {
  const p = new Parser(buf);
  p.pos = start;
  const value = p.value(0);
  return { value, end: p.pos };
}

/**
 * The byte span [start, end) of the value under `key` of the top-level dictionary in `buf` (the `info`
 * dictionary of a .torrent, whose SHA-1 / SHA-256 is the infohash), or undefined when the key is absent.
 */
export function decodeSpan(buf: Uint8Array, key: string): { start: number; end: number } | undefined {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const p = new Parser(b);
  if (b[0] !== 0x64) fail("expected a dictionary", 0);
  p.pos = 1;
  while (p.pos < b.length && b[p.pos] !== 0x65) {
    const k = p.bytes().toString("latin1");
    const start = p.pos;
    p.value(1);
    if (k === key) return { start, end: p.pos };
  }
  return undefined;
}

class Parser {
  pos = 0;
  private readonly b: Buffer;
  constructor(b: Buffer) {
    this.b = b;
  }

  value(depth: number): BValue {
    if (depth > MAX_DEPTH) fail("nesting too deep", this.pos);
    const c = this.b[this.pos];
    if (c === undefined) fail("unexpected end", this.pos);
    if (c === 0x69) return this.int();
    if (c >= 0x30 && c <= 0x39) return this.bytes();
    if (c === 0x6c) {
      this.pos++;
      const list: BValue[] = [];
      while (this.b[this.pos] !== 0x65) {
        if (this.pos >= this.b.length) fail("unterminated list", this.pos);
        list.push(this.value(depth + 1));
      }
      this.pos++;
      return list;
    }
    if (c === 0x64) {
      this.pos++;
      const dict: BDict = Object.create(null);
      while (this.b[this.pos] !== 0x65) {
        if (this.pos >= this.b.length) fail("unterminated dictionary", this.pos);
        const at = this.pos;
        const key = this.bytes().toString("latin1");
        if (Object.hasOwn(dict, key)) fail(`duplicate key ${JSON.stringify(key)}`, at);
        dict[key] = this.value(depth + 1);
      }
      this.pos++;
      return dict;
    }
    fail(`unexpected byte 0x${c.toString(16)}`, this.pos);
  }

  private int(): number {
    const start = ++this.pos;
    const end = this.b.indexOf(0x65, start);
    if (end < 0 || end - start > 17) fail("bad integer", start);
    const text = this.b.toString("latin1", start, end);
    if (!/^(0|-?[1-9][0-9]*)$/.test(text)) fail(`bad integer ${JSON.stringify(text)}`, start);
    const n = Number(text);
    if (!Number.isSafeInteger(n)) fail("integer out of range", start);
    this.pos = end + 1;
    return n;
  }

  bytes(): Buffer {
    const start = this.pos;
    const colon = this.b.indexOf(0x3a, start);
    if (colon < 0 || colon - start > 10) fail("bad string length", start);
    const text = this.b.toString("latin1", start, colon);
    if (!/^(0|[1-9][0-9]*)$/.test(text)) fail(`bad string length ${JSON.stringify(text)}`, start);
    const len = Number(text);
    if (colon + 1 + len > this.b.length) fail("string runs past the end", start);
    this.pos = colon + 1 + len;
    return this.b.subarray(colon + 1, this.pos);
  }
}

/** Typed reads from a decoded dictionary (undefined when absent or of another type). */
export const bget = {
  dict: (d: BValue | undefined, k: string): BDict | undefined => {
    const v = isDict(d) ? d[k] : undefined;
    return isDict(v) ? v : undefined;
  },
  bytes: (d: BValue | undefined, k: string): Buffer | undefined => {
    const v = isDict(d) ? d[k] : undefined;
    return Buffer.isBuffer(v) ? v : undefined;
  },
  str: (d: BValue | undefined, k: string): string | undefined => {
    const v = isDict(d) ? d[k] : undefined;
    return Buffer.isBuffer(v) ? v.toString("utf8") : undefined;
  },
  int: (d: BValue | undefined, k: string): number | undefined => {
    const v = isDict(d) ? d[k] : undefined;
    return typeof v === "number" ? v : undefined;
  },
  list: (d: BValue | undefined, k: string): BValue[] | undefined => {
    const v = isDict(d) ? d[k] : undefined;
    return Array.isArray(v) ? v : undefined;
  },
};

export function isDict(v: BValue | undefined): v is BDict {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}
