/**
 * Where a torrent's pieces live. In progress: one sparse temp file over the piece space (<data>/partial/).
 * Complete: one CAS object per real file, held by `p2p:<infohash>` so GC keeps it while we seed. Every piece is
 * checked against the torrent's hashes before it is written and again before it is served (a verified piece
 * stays in a small cache, so serving its blocks reads and hashes it once).
 *
 * Resume: `<hex>.bits` next to the temp file records the pieces that are verified AND on disk. A flush (at most
 * every FLUSH_MS while downloading, and on close) fdatasyncs the temp file first and only then writes the bitfield
 * (temp file + rename, so it is whole or absent): a crash loses at most the last flush's pieces and never counts a
 * piece whose bytes did not reach the disk. On load the pieces the bitfield claims are hashed again (only those:
 * the cost is what was downloaded, not the torrent's size) and a piece that fails is dropped and fetched again.
 */

import { constants } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { mkdir, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CasStore } from "../cas/types.ts";
import { AmiError } from "../core/errors.ts";
import { type Metainfo, pieceSize, verifyPiece, wireHash } from "./metainfo.ts";
import { Bits } from "./wire/messages.ts";

export const holdName = (m: Metainfo): string => `p2p:${wireHash(m).toString("hex")}`;
const CACHE_BYTES = 64 * 1024 * 1024;
const FLUSH_MS = 500;
const BITS_MAGIC = Buffer.from("AMIBITS1");

export class TorrentStorage {
  readonly meta: Metainfo;
  readonly have: Buffer;
  haveCount = 0;
  /** CAS ids per file (null for pads and empty files) once complete. */
  fileIds: (string | null)[] | null = null;
  private readonly cas: CasStore;
  private readonly partialPath: string;
  private fh: FileHandle | null = null;
  private opening: Promise<FileHandle> | null = null;
  private readonly writing = new Set<number>();
  private readonly cache = new Map<number, Buffer>();
  private cacheBytes = 0;
  private readonly bitsPath: string;
  /** Pieces written since the last flush (not yet durable). */
  private readonly pending = new Set<number>();
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  /** Pieces dropped on load because their bytes no longer matched (for logs and tests). */
  recheckFailed = 0;

  constructor(meta: Metainfo, cas: CasStore, dataDir: string) {
    this.meta = meta;
    this.cas = cas;
    this.have = Bits.make(meta.pieceCount);
    this.partialPath = join(dataDir, "partial", `${wireHash(meta).toString("hex")}.part`);
    this.bitsPath = this.partialPath.replace(/\.part$/, ".bits");
  }

  /**
   * Pick up an interrupted download: the pieces the bitfield file claims, each re-hashed from the temp file.
   * Returns the indexes kept. Missing or malformed state means nothing is kept (the temp file is reused).
   */
  async load(): Promise<number[]> {
    const raw = await readFile(this.bitsPath).catch(() => null);
    const size = Bits.make(this.meta.pieceCount).length;
    if (!raw || raw.length !== BITS_MAGIC.length + 4 + size || !raw.subarray(0, 8).equals(BITS_MAGIC)) return [];
    if (raw.readUInt32BE(8) !== this.meta.pieceCount) return [];
    const claimed = raw.subarray(12);
    const fh = await this.file().catch(() => null);
    if (!fh) return [];
    const kept: number[] = [];
    for (let i = 0; i < this.meta.pieceCount; i++) {
      if (!Bits.get(claimed, i) || Bits.get(this.have, i)) continue;
      const buf = Buffer.alloc(pieceSize(this.meta, i));
      const { bytesRead } = await fh.read(buf, 0, buf.length, i * this.meta.pieceLength);
      if (bytesRead !== buf.length || !verifyPiece(this.meta, i, buf)) {
        this.recheckFailed++;
        continue;
      }
      Bits.set(this.have, i);
      this.haveCount++;
      kept.push(i);
    }
    // The file now says exactly what survived the re-check.
    if (this.recheckFailed) await this.writeBits();
    return kept;
  }

  /** The temp file, opened read-write without truncating what an earlier run left. */
  private file(): Promise<FileHandle> {
    this.opening ??= mkdir(join(this.partialPath, ".."), { recursive: true }).then(() =>
      open(this.partialPath, constants.O_RDWR | constants.O_CREAT, 0o644),
    );
    return this.opening.then((fh) => {
      this.fh = fh;
      return fh;
    });
  }

  private schedule(): void {
    if (this.flushTimer || this.fileIds) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.flush().catch(() => {});
    }, FLUSH_MS);
    this.flushTimer.unref();
  }

  /** Make the pieces written so far durable: data first (fdatasync), then the bitfield that names them. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.size === 0 || !this.fh) return;
      const batch = [...this.pending];
      await this.fh.datasync();
      for (const i of batch) this.pending.delete(i);
      await this.writeBits();
    });
    return this.flushing;
  }

  private async writeBits(): Promise<void> {
    const durable = Buffer.from(this.have);
    for (const i of this.pending) durable[i >> 3] = (durable[i >> 3] as number) & ~(0x80 >> (i & 7));
    const head = Buffer.alloc(12);
    BITS_MAGIC.copy(head);
    head.writeUInt32BE(this.meta.pieceCount, 8);
    const tmp = `${this.bitsPath}.tmp`;
    await writeFile(tmp, Buffer.concat([head, durable]));
    await rename(tmp, this.bitsPath);
  }

  get complete(): boolean {
    return this.haveCount === this.meta.pieceCount;
  }

  /** Bytes of real files we hold (for `left` in tracker announces). */
  get left(): number {
    let done = 0;
    for (let i = 0; i < this.meta.pieceCount; i++) if (Bits.get(this.have, i)) done += pieceSize(this.meta, i);
    return Math.max(0, this.meta.spaceLength - done - this.padBytes());
  }

  private padBytes(): number {
    return this.meta.files.filter((f) => f.pad).reduce((s, f) => s + f.length, 0);
  }

  /** Seed from CAS objects already stored (publish, or a restart after completion). */
  async adopt(fileIds: (string | null)[]): Promise<void> {
    this.fileIds = fileIds;
    this.have.fill(0);
    for (let i = 0; i < this.meta.pieceCount; i++) Bits.set(this.have, i);
    this.haveCount = this.meta.pieceCount;
  }

  /** Verify and store a downloaded piece; false (nothing written) when its hash does not match. */
  async write(index: number, data: Buffer): Promise<boolean> {
    if (!verifyPiece(this.meta, index, data)) return false;
    if (Bits.get(this.have, index) || this.writing.has(index)) return true;
    this.writing.add(index);
    try {
      const fh = await this.file();
      await fh.write(data, 0, data.length, index * this.meta.pieceLength);
    } finally {
      this.writing.delete(index);
    }
    Bits.set(this.have, index);
    this.haveCount++;
    this.pending.add(index);
    this.schedule();
    this.remember(index, data);
    return true;
  }

  /** A whole piece, verified against its hash; throws AMI_CORRUPT if what we hold no longer matches. */
  async read(index: number): Promise<Buffer> {
    const hit = this.cache.get(index);
    if (hit) {
      this.cache.delete(index);
      this.cache.set(index, hit);
      return hit;
    }
    if (!Bits.get(this.have, index)) throw new AmiError("AMI_INVALID_INPUT", `piece ${index} is not here`);
    const size = pieceSize(this.meta, index);
    const start = index * this.meta.pieceLength;
    const buf = Buffer.alloc(size);
    if (this.fileIds) await this.readCas(start, buf);
    else if (this.fh) await this.fh.read(buf, 0, size, start);
    if (!verifyPiece(this.meta, index, buf))
      throw new AmiError("AMI_CORRUPT", `piece ${index} of ${this.meta.name} fails its hash`);
    this.remember(index, buf);
    return buf;
  }

  private async readCas(start: number, out: Buffer): Promise<void> {
    const end = start + out.length;
    for (const [i, f] of this.meta.files.entries()) {
      const a = Math.max(start, f.offset);
      const b = Math.min(end, f.offset + f.length);
      if (a >= b || f.pad) continue;
      const id = this.fileIds?.[i];
      if (!id) continue;
      let at = a - start;
      for await (const chunk of this.cas.get(id, { start: a - f.offset, end: b - f.offset })) {
        chunk.copy(out, at);
        at += chunk.length;
      }
    }
  }

  private remember(index: number, buf: Buffer): void {
    this.cache.set(index, buf);
    this.cacheBytes += buf.length;
    for (const [k, v] of this.cache) {
      if (this.cacheBytes <= CACHE_BYTES) break;
      this.cache.delete(k);
      this.cacheBytes -= v.length;
    }
  }

  /** Move a complete download into the CAS (one object per file, held), then drop the temp file. */
  async finalize(): Promise<(string | null)[]> {
    if (this.fileIds) return this.fileIds;
    if (!this.complete) throw new AmiError("AMI_INVALID_INPUT", "torrent is not complete");
    const hold = holdName(this.meta);
    const ids: (string | null)[] = [];
    for (const f of this.meta.files) {
      if (f.pad || f.length === 0) {
        ids.push(f.pad ? null : (await this.cas.put(Buffer.alloc(0), { hold })).id);
        continue;
      }
      const fh = this.fh as FileHandle;
      const stream = fh.createReadStream({ start: f.offset, end: f.offset + f.length - 1, autoClose: false });
      ids.push((await this.cas.put(stream as AsyncIterable<Buffer>, { hold })).id);
    }
    this.fileIds = ids;
    await this.close();
    await rm(this.partialPath, { force: true });
    await rm(this.bitsPath, { force: true });
    return ids;
  }

  /** Flush (a stopped download resumes from here) and close the temp file. */
  async close(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    await this.flush().catch(() => {});
    const fh = this.fh ?? (await this.opening?.catch(() => null));
    this.fh = null;
    this.opening = null;
    await fh?.close();
  }

  /** Drop the temp file of an unfinished download. */
  async discard(): Promise<void> {
    await this.close();
    await rm(this.partialPath, { force: true });
    await rm(this.bitsPath, { force: true });
  }
}
