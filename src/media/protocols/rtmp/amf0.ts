/** AMF0 (Adobe Action Message Format 0): the encoding of RTMP command and data messages. */

export type Amf = number | boolean | string | null | undefined | AmfObject | Amf[] | Date;
export interface AmfObject {
  [k: string]: Amf;
}

const NUMBER = 0x00;
const BOOLEAN = 0x01;
const STRING = 0x02;
const OBJECT = 0x03;
const NULL = 0x05;
const UNDEFINED = 0x06;
const REFERENCE = 0x07;
const ECMA_ARRAY = 0x08;
const OBJECT_END = 0x09;
const STRICT_ARRAY = 0x0a;
const DATE = 0x0b;
const LONG_STRING = 0x0c;
const XML_DOC = 0x0f;
const TYPED_OBJECT = 0x10;
const SWITCH_AMF3 = 0x11;

const MAX_DEPTH = 32;

export class AmfError extends Error {}

/** Decode every value in `buf` (a command: name, transaction id, command object, arguments...). */
export function decodeAll(buf: Buffer): Amf[] {
  const out: Amf[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [v, next] = decodeValue(buf, pos, 0);
    out.push(v);
    pos = next;
  }
  return out;
}

function need(buf: Buffer, pos: number, n: number): void {
  if (pos + n > buf.length) throw new AmfError("AMF0 value truncated");
}

function readKey(buf: Buffer, pos: number): [string, number] {
  need(buf, pos, 2);
  const n = buf.readUInt16BE(pos);
  need(buf, pos + 2, n);
  return [buf.toString("utf8", pos + 2, pos + 2 + n), pos + 2 + n];
}

function readProps(buf: Buffer, pos: number, depth: number): [AmfObject, number] {
  const o: AmfObject = {};
  for (;;) {
    const [k, p] = readKey(buf, pos);
    need(buf, p, 1);
    if (k === "" && buf[p] === OBJECT_END) return [o, p + 1];
    const [v, next] = decodeValue(buf, p, depth + 1);
    o[k] = v;
    pos = next;
  }
}

export function decodeValue(buf: Buffer, pos: number, depth = 0): [Amf, number] {
  if (depth > MAX_DEPTH) throw new AmfError("AMF0 nesting too deep");
  need(buf, pos, 1);
  const t = buf[pos++];
  switch (t) {
    case NUMBER:
      need(buf, pos, 8);
      return [buf.readDoubleBE(pos), pos + 8];
    case BOOLEAN:
      need(buf, pos, 1);
      return [buf[pos] !== 0, pos + 1];
    case STRING:
      return readKey(buf, pos);
    case LONG_STRING:
    case XML_DOC: {
      need(buf, pos, 4);
      const n = buf.readUInt32BE(pos);
      need(buf, pos + 4, n);
      return [buf.toString("utf8", pos + 4, pos + 4 + n), pos + 4 + n];
    }
    case OBJECT:
      return readProps(buf, pos, depth);
    case TYPED_OBJECT: {
      const [, p] = readKey(buf, pos);
      return readProps(buf, p, depth);
    }
    case ECMA_ARRAY:
      need(buf, pos, 4);
      return readProps(buf, pos + 4, depth);
    case STRICT_ARRAY: {
      need(buf, pos, 4);
      const n = buf.readUInt32BE(pos);
      pos += 4;
      if (n > buf.length - pos) throw new AmfError("AMF0 array longer than its message");
      const arr: Amf[] = [];
      for (let i = 0; i < n; i++) {
        const [v, next] = decodeValue(buf, pos, depth + 1);
        arr.push(v);
        pos = next;
      }
      return [arr, pos];
    }
    case DATE:
      need(buf, pos, 10);
      return [new Date(buf.readDoubleBE(pos)), pos + 10];
    case NULL:
      return [null, pos];
    case UNDEFINED:
      return [undefined, pos];
    case REFERENCE:
      need(buf, pos, 2);
      return [null, pos + 2];
    case SWITCH_AMF3:
      throw new AmfError("AMF3 values are not supported");
    default:
      throw new AmfError(`unknown AMF0 type 0x${(t ?? 0).toString(16)}`);
  }
}

export function encode(...values: Amf[]): Buffer {
  const parts: Buffer[] = [];
  for (const v of values) encodeValue(v, parts);
  return Buffer.concat(parts);
}

function key(k: string): Buffer {
  const s = Buffer.from(k, "utf8");
  const b = Buffer.alloc(2);
  b.writeUInt16BE(s.length);
  return Buffer.concat([b, s]);
}

function encodeValue(v: Amf, out: Buffer[]): void {
  if (v === null) out.push(Buffer.from([NULL]));
  else if (v === undefined) out.push(Buffer.from([UNDEFINED]));
  else if (typeof v === "number") {
    const b = Buffer.alloc(9);
    b[0] = NUMBER;
    b.writeDoubleBE(v, 1);
    out.push(b);
  } else if (typeof v === "boolean") out.push(Buffer.from([BOOLEAN, v ? 1 : 0]));
  else if (typeof v === "string") {
    const s = Buffer.from(v, "utf8");
    if (s.length > 0xffff) {
      const b = Buffer.alloc(5);
      b[0] = LONG_STRING;
      b.writeUInt32BE(s.length, 1);
      out.push(b, s);
    } else out.push(Buffer.from([STRING]), key(v));
  } else if (v instanceof Date) {
    const b = Buffer.alloc(11);
    b[0] = DATE;
    b.writeDoubleBE(v.getTime(), 1);
    out.push(b);
  } else if (Array.isArray(v)) {
    const b = Buffer.alloc(5);
    b[0] = STRICT_ARRAY;
    b.writeUInt32BE(v.length, 1);
    out.push(b);
    for (const x of v) encodeValue(x, out);
  } else {
    out.push(Buffer.from([OBJECT]));
    for (const [k, x] of Object.entries(v)) {
      out.push(key(k));
      encodeValue(x, out);
    }
    out.push(Buffer.from([0, 0, OBJECT_END]));
  }
}

/** ECMA array form, which onMetaData uses. */
export function encodeEcmaArray(o: AmfObject): Buffer {
  const head = Buffer.alloc(5);
  head[0] = ECMA_ARRAY;
  head.writeUInt32BE(Object.keys(o).length, 1);
  const body = encode(o).subarray(1);
  return Buffer.concat([head, body]);
}
