/**
 * A file is a manifest: its size, its whole-file SHA-256 and its chunks in order. The object id is the SHA-256
 * of the manifest's canonical bytes (fixed key order, no whitespace), so equal content chunked with equal
 * parameters has one id on every machine, and a manifest read back is verified against its own name.
 */
import { AmiError } from "../core/errors.ts";
import type { ChunkParams } from "./chunker.ts";
import { isHex64, sha256Hex } from "./ids.ts";

export interface Manifest {
  size: number;
  sha256: string;
  params: ChunkParams;
  /** [chunk sha256 hex, chunk length] in file order. */
  chunks: [string, number][];
}

export function encodeManifest(m: Manifest): Buffer {
  const chunks = m.chunks.map(([h, n]) => `["${h}",${n}]`).join(",");
  const p = m.params;
  return Buffer.from(
    `{"v":1,"size":${m.size},"sha256":"${m.sha256}","params":{"min":${p.min},"avg":${p.avg},"max":${p.max}},"chunks":[${chunks}]}`,
  );
}

export const manifestId = (bytes: Uint8Array): string => sha256Hex(bytes);

const corrupt = (id: string, why: string) =>
  new AmiError("AMI_CORRUPT", `manifest ${id} is corrupt: ${why}`, { object: id });

/** Parse and verify: the bytes must hash to `id`, be canonical, and their chunk sizes must add up. */
export function decodeManifest(id: string, bytes: Buffer): Manifest {
  if (manifestId(bytes) !== id) throw corrupt(id, "its bytes do not hash to its id");
  let raw: { v?: unknown; size?: unknown; sha256?: unknown; params?: ChunkParams; chunks?: unknown };
  try {
    raw = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw corrupt(id, "not JSON");
  }
  const chunks = raw.chunks as [string, number][];
  const p = raw.params;
  if (typeof p !== "object" || p === null || ![p.min, p.avg, p.max].every(Number.isSafeInteger))
    throw corrupt(id, "bad chunk parameters");
  if (raw.v !== 1 || typeof raw.size !== "number" || typeof raw.sha256 !== "string" || !Array.isArray(chunks))
    throw corrupt(id, "unknown layout");
  let total = 0;
  for (const c of chunks) {
    if (!Array.isArray(c) || !isHex64(String(c[0])) || !Number.isSafeInteger(c[1])) throw corrupt(id, "bad chunk");
    total += c[1];
  }
  if (total !== raw.size) throw corrupt(id, "chunk sizes do not add up to the size");
  const m: Manifest = { size: raw.size, sha256: raw.sha256, params: p, chunks };
  if (!encodeManifest(m).equals(bytes)) throw corrupt(id, "not canonical");
  return m;
}

/** Chunks overlapping [start, end) (end exclusive) with the slice of each that is wanted. */
export function* chunksInRange(
  m: Manifest,
  start: number,
  end: number,
): Generator<{ hash: string; size: number; from: number; to: number }> {
  let off = 0;
  for (const [hash, size] of m.chunks) {
    const cEnd = off + size;
    if (cEnd > start && off < end) {
      yield { hash, size, from: Math.max(0, start - off), to: Math.min(size, end - off) };
    }
    if (cEnd >= end) break;
    off = cEnd;
  }
}
