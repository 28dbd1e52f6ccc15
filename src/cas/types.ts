/**
 * The content-addressed store's interface. Backends (the filesystem one today; object storage, a remote peer
 * later) implement it and pass one conformance suite (conformance.ts). Chunking, manifests and ids are shared
 * helpers, so every backend produces the same ids for the same bytes.
 */
import type { ChunkParams } from "./chunker.ts";
import type { Manifest } from "./manifest.ts";

export interface PutResult {
  /** Object id: SHA-256 of the canonical manifest. */
  id: string;
  /** Plain SHA-256 of the whole content. */
  sha256: string;
  /** CIDv1 (raw, sha2-256, base32) of the whole content. */
  cid: string;
  size: number;
  chunks: number;
  /** Chunks (and their bytes) this put stored that were not in the store before. */
  newChunks: number;
  newBytes: number;
}

export interface ObjectInfo {
  id: string;
  sha256: string;
  cid: string;
  size: number;
  chunks: number;
  /** Named holds on the object (a pin is the hold "pin"); the object's reference count is their number. */
  holds: string[];
  pinned: boolean;
}

export interface GcReport {
  objectsDeleted: number;
  chunksDeleted: number;
  bytesFreed: number;
  objectsKept: number;
  chunksKept: number;
  tempFilesRemoved: number;
}

export interface CorruptChunk {
  chunk: string;
  /** Objects that reference the chunk. */
  objects: string[];
  problem: "mismatch" | "missing";
}

export interface VerifyReport {
  objectsChecked: number;
  chunksChecked: number;
  bytesChecked: number;
  corrupt: CorruptChunk[];
  /** Objects whose manifest itself is unreadable or fails its hash. */
  corruptObjects: string[];
}

export interface PutOptions {
  /** Take this hold in the same commit as the manifest, so no GC can run in between (e.g. "pin"). */
  hold?: string;
  signal?: AbortSignal;
  /** Called with bytes consumed so far. */
  progress?: (bytes: number) => void;
}

export interface CasStore {
  readonly params: ChunkParams;
  put(source: ByteSource, opts?: PutOptions): Promise<PutResult>;
  /** Content in [start, end) (end exclusive, default: to the end); every chunk is verified before it is yielded. */
  get(id: string, range?: { start?: number; end?: number }): AsyncIterable<Buffer>;
  stat(id: string): Promise<ObjectInfo>;
  /** The verified manifest of a full object id (its chunks, in order). */
  manifest(id: string): Promise<Manifest>;
  list(): Promise<ObjectInfo[]>;
  hold(id: string, name: string): Promise<void>;
  release(id: string, name: string): Promise<void>;
  /** Delete objects with no hold and chunks no remaining object or in-flight put uses. */
  gc(): Promise<GcReport>;
  /** `progress` is called with chunks checked so far and the total. */
  verify(id?: string, progress?: (done: number, total: number) => void): Promise<VerifyReport>;
  /** A full id from an id, a unique id prefix (>= 8 hex), a whole-file sha256 or a CID. */
  resolve(ref: string): Promise<string>;
}

export const PIN = "pin";

/** Bytes to store: one buffer, or pieces from a stream or generator (consumed once, never held whole). */
export type ByteSource = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
