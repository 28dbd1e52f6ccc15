/** Writing ISO BMFF boxes: a box is its 32-bit size, a 4-character type, then its payload parts. */

export function box(type: string, ...parts: Buffer[]): Buffer {
  let size = 8;
  for (const p of parts) size += p.length;
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(size, 0);
  head.write(type, 4, "latin1");
  return Buffer.concat([head, ...parts], size);
}

/** A FullBox: version and 24-bit flags before the payload. */
export const fullBox = (type: string, version: number, flags: number, ...parts: Buffer[]): Buffer =>
  box(type, u32(((version & 0xff) << 24) | (flags & 0xffffff)), ...parts);

export function u8(...v: number[]): Buffer {
  return Buffer.from(v);
}

export function u16(...v: number[]): Buffer {
  const b = Buffer.allocUnsafe(2 * v.length);
  for (let i = 0; i < v.length; i++) b.writeUInt16BE((v[i] as number) & 0xffff, 2 * i);
  return b;
}

export function u32(...v: number[]): Buffer {
  const b = Buffer.allocUnsafe(4 * v.length);
  for (let i = 0; i < v.length; i++) b.writeUInt32BE((v[i] as number) >>> 0, 4 * i);
  return b;
}

export const zeros = (n: number): Buffer => Buffer.alloc(n);
