/**
 * The filesystem backend of the content-addressed store (layout and write rules: fs-layout.ts; packs: fs-pack.ts;
 * GC: fs-gc.ts).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { type FileHandle, mkdir, readdir, readFile, rename, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AmiError } from "../core/errors.ts";
import { type ChunkParams, chunkStream } from "./chunker.ts";
import { collectGarbage, verifyStore } from "./fs-gc.ts";
import { FsLayout, Lease } from "./fs-layout.ts";
import { openPack, PackIndex, PackWriter, readExact } from "./fs-pack.ts";
import { cidFromSha256, isHex64, sha256FromCid, sha256Hex, sha256HexAsync } from "./ids.ts";
import { chunksInRange, decodeManifest, encodeManifest, type Manifest, manifestId } from "./manifest.ts";
import {
  type ByteSource,
  type CasStore,
  type GcReport,
  type ObjectInfo,
  PIN,
  type PutOptions,
  type PutResult,
  type VerifyReport,
} from "./types.ts";

/**
 * Chunks hashed in flight per put: two keep two cores busy for one large put, and many puts at once share the
 * thread pool anyway; each more costs up to a max-size chunk per concurrent put (20 concurrent 50 MiB uploads:
 * RSS growth 57-75 MB with 2, 71-105 MB with 4, same machine and session).
 */
const WRITES_IN_FLIGHT = 2;
/** Runs read ahead per get: overlaps disk reads with hashing and the consumer. */
const READ_AHEAD = 4;
/** One positioned read per run of adjacent chunks, up to this much. */
const READ_BYTES = 256 * 1024;
/** A put starts a new pack past this size (so GC never has to rewrite huge packs). */
const PACK_MAX_BYTES = 128 * 1024 * 1024;

interface Run {
  pack: string | undefined;
  off: number;
  len: number;
  parts: { hash: string; size: number; from: number; to: number; at: number }[];
}

const isNoEnt = (e: unknown) => (e as NodeJS.ErrnoException)?.code === "ENOENT";
const notFound = (ref: string) => new AmiError("M_NOT_FOUND", `no object '${ref}' in the store`);
const holdFile = (name: string) => Buffer.from(name).toString("base64url");

export interface FsCasOptions {
  root: string;
  params: ChunkParams;
  /** fsync every file and directory before it is relied on (off only for throwaway stores). */
  fsync?: boolean;
  /** Pack size at which a put starts another pack (tests make it small). */
  packMaxBytes?: number;
}

export class FsCasStore implements CasStore {
  readonly params: ChunkParams;
  readonly layout: FsLayout;
  readonly packs: PackIndex;
  readonly packMaxBytes: number;

  constructor(o: FsCasOptions) {
    this.params = o.params;
    this.layout = new FsLayout(o.root, o.fsync ?? true);
    this.packs = new PackIndex(this.layout);
    this.packMaxBytes = o.packMaxBytes ?? PACK_MAX_BYTES;
  }

  async put(source: ByteSource, opts: PutOptions = {}): Promise<PutResult> {
    const input = source instanceof Uint8Array ? [source] : source;
    await this.packs.refresh();
    const lease = await Lease.open(this.layout);
    const writer = new PackWriter(this.layout, this.packMaxBytes);
    const whole = createHash("sha256");
    const chunks: [string, number][] = [];
    const seen = new Set<string>();
    const writing = new Set<Promise<void>>();
    let failure: unknown;
    let size = 0;
    let newChunks = 0;
    let newBytes = 0;
    try {
      for await (const chunk of chunkStream(input, this.params)) {
        if (failure) throw failure;
        opts.signal?.throwIfAborted();
        whole.update(chunk);
        size += chunk.length;
        const entry: [string, number] = ["", chunk.length];
        chunks.push(entry);
        opts.progress?.(size);
        const task = (async () => {
          const h = await sha256HexAsync(chunk);
          entry[0] = h;
          if (seen.has(h)) return;
          seen.add(h);
          // The lease names the chunk before we look for it, so a GC that runs now keeps it (fs-gc.ts).
          lease.add(h);
          if (this.#has(h)) return;
          newChunks++;
          newBytes += chunk.length;
          await writer.add(h, chunk);
        })().catch((e) => {
          failure ??= e;
        });
        writing.add(task);
        void task.then(() => writing.delete(task));
        if (writing.size >= WRITES_IN_FLIGHT) await Promise.race(writing);
      }
      await Promise.all(writing);
      if (failure) throw failure;
      await writer.finish(); // the one fsync of the chunks (per pack), then the packs directory
      for (const d of writer.done) this.packs.add(d.name, d.entries);
      const sha256 = whole.digest("hex");
      const bytes = encodeManifest({ size, sha256, params: this.params, chunks });
      const id = manifestId(bytes);
      // The hold goes first: a GC that sees the manifest then also sees its hold, so none can take the object
      // between its commit and its hold. If the commit fails, a hold this put created is taken back.
      if (opts.hold) lease.add(`o:${id}`); // so GC leaves the hold alone until the manifest is there
      const created = opts.hold ? await this.#writeHold(id, opts.hold) : false;
      try {
        await this.layout.writeAtomic(this.layout.object(id), bytes);
        await this.layout.syncDir(join(this.layout.dir("objects"), id.slice(0, 2)));
      } catch (e) {
        if (created && opts.hold) await this.release(id, opts.hold).catch(() => {});
        throw e;
      }
      await this.layout.writeAtomic(this.layout.bySha(sha256), Buffer.from(id));
      return { id, sha256, cid: cidFromSha256(sha256), size, chunks: chunks.length, newChunks, newBytes };
    } finally {
      await Promise.allSettled(writing);
      await writer.abort();
      await lease.close();
    }
  }

  /** The chunk is stored and GC has not moved it aside (checked after the lease names it). */
  #has(h: string): boolean {
    if (this.packs.has(h)) return true;
    return this.layout.legacyChunks && existsSync(this.layout.chunk(h)); // no exception object per new chunk
  }

  /** Where a chunk's bytes are, for tests that damage them: a pack (or a legacy chunk file) and the byte range. */
  async locate(h: string): Promise<{ path: string; off: number; len: number } | undefined> {
    let loc = this.packs.get(h);
    if (!loc) {
      await this.packs.refresh(true);
      loc = this.packs.get(h);
    }
    if (loc) return { path: this.layout.pack(loc.pack), off: loc.off, len: loc.len };
    const legacy = this.layout.chunk(h);
    return existsSync(legacy) ? { path: legacy, off: 0, len: (await stat(legacy)).size } : undefined;
  }

  /** Raw bytes of a file that GC may be moving to the trash right now (it moves back what turns out live). */
  async #readMovable(path: string, trashName: string): Promise<Buffer | undefined> {
    for (const p of [path, this.layout.trash(trashName), path]) {
      try {
        return await readFile(p);
      } catch (e) {
        if (!isNoEnt(e)) throw e;
      }
    }
    return undefined;
  }

  /**
   * A chunk's raw bytes: from its pack, else a legacy chunk file. If its pack moved, the index is refreshed and the
   * read tried again; each GC that moves the chunk names its new pack before deleting the old, so a reader loses
   * the race at most once per GC running meanwhile.
   */
  async #readRaw(h: string): Promise<Buffer | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const loc = this.packs.get(h);
      if (loc) {
        const fh = await openPack(this.layout, loc.pack);
        if (fh) {
          try {
            return await readExact(fh, loc.off, loc.len);
          } finally {
            await fh.close();
          }
        }
      }
      if (this.layout.legacyChunks) {
        const b = await this.#readMovable(this.layout.chunk(h), `c-${h}`);
        if (b) return b;
      }
      await this.packs.refresh(true);
    }
    return undefined;
  }

  async readChunk(h: string, object?: string): Promise<Buffer> {
    const b = await this.#readRaw(h);
    if (!b) throw new AmiError("AMI_CORRUPT", `chunk ${h} is missing`, { chunk: h, object });
    if ((await sha256HexAsync(b)) !== h)
      throw new AmiError("AMI_CORRUPT", `chunk ${h} does not match its hash`, { chunk: h, object });
    return b;
  }

  async manifest(id: string): Promise<Manifest> {
    const b = await this.#readMovable(this.layout.object(id), `m-${id}`);
    if (!b) throw notFound(id);
    return decodeManifest(id, b);
  }

  async *get(ref: string, range: { start?: number; end?: number } = {}): AsyncIterable<Buffer> {
    const id = await this.resolve(ref);
    const m = await this.manifest(id);
    const start = range.start ?? 0;
    const end = Math.min(range.end ?? m.size, m.size);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end)
      throw new AmiError("AMI_INVALID_INPUT", `range ${start}-${end} is outside the object (size ${m.size})`);
    await this.packs.refresh();
    // Runs of chunks that sit back to back in one pack (what a put writes) are read with one positioned read.
    const runs: Run[] = [];
    for (const part of chunksInRange(m, start, end)) {
      const loc = this.packs.get(part.hash);
      const last = runs[runs.length - 1];
      if (loc && last?.pack === loc.pack && last.off + last.len === loc.off && last.len + loc.len <= READ_BYTES) {
        last.parts.push({ ...part, at: last.len });
        last.len += loc.len;
      } else
        runs.push({ pack: loc?.pack, off: loc?.off ?? 0, len: loc?.len ?? part.size, parts: [{ ...part, at: 0 }] });
    }
    const files = new Map<string, Promise<FileHandle | undefined>>();
    const ahead: Promise<Buffer[]>[] = [];
    let next = 0;
    const fill = () => {
      while (next < runs.length && ahead.length < READ_AHEAD) {
        const p = this.#readRun(runs[next++], files, id);
        p.catch(() => {}); // awaited below in order; this only keeps an early failure from being "unhandled"
        ahead.push(p);
      }
    };
    try {
      while (next < runs.length || ahead.length) {
        fill();
        for (const b of await ahead.shift()!) yield b;
      }
    } finally {
      await Promise.allSettled(ahead);
      for (const f of files.values()) await f.then((fh) => fh?.close()).catch(() => {});
    }
  }

  /**
   * Read a run and verify each chunk; the wanted slices, in order. Hashed here, not in the thread pool: the read
   * and the consumer's write already use it, and on this shared 2-core machine WebCrypto's per-call overhead made
   * get slower (measured: 199-271 MiB/s through the pool, 332-435 MiB/s on the main thread, same load).
   */
  async #readRun(run: Run, files: Map<string, Promise<FileHandle | undefined>>, id: string): Promise<Buffer[]> {
    let buf: Buffer | undefined;
    if (run.pack) {
      let f = files.get(run.pack);
      if (!f) {
        f = openPack(this.layout, run.pack);
        files.set(run.pack, f);
      }
      const fh = await f;
      if (fh) buf = await readExact(fh, run.off, run.len);
    }
    if (!buf) return Promise.all(run.parts.map(async (p) => (await this.readChunk(p.hash, id)).subarray(p.from, p.to)));
    const b = buf;
    return run.parts.map((p) => {
      const c = b.subarray(p.at, p.at + p.size);
      if (sha256Hex(c) !== p.hash)
        throw new AmiError("AMI_CORRUPT", `chunk ${p.hash} does not match its hash`, { chunk: p.hash, object: id });
      return c.subarray(p.from, p.to);
    });
  }

  async #holdNames(id: string): Promise<string[]> {
    try {
      return (await readdir(this.layout.holds(id))).map((f) => Buffer.from(f, "base64url").toString());
    } catch (e) {
      if (isNoEnt(e)) return [];
      throw e;
    }
  }

  async stat(ref: string): Promise<ObjectInfo> {
    const id = await this.resolve(ref);
    const m = await this.manifest(id);
    const holds = (await this.#holdNames(id)).sort();
    return {
      id,
      sha256: m.sha256,
      cid: cidFromSha256(m.sha256),
      size: m.size,
      chunks: m.chunks.length,
      holds,
      pinned: holds.includes(PIN),
    };
  }

  async objectIds(): Promise<string[]> {
    const ids: string[] = [];
    for (const s of await readdir(this.layout.dir("objects"))) {
      for (const f of await readdir(join(this.layout.dir("objects"), s))) if (isHex64(f)) ids.push(f);
    }
    return ids;
  }

  async list(): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    for (const id of await this.objectIds()) {
      try {
        out.push(await this.stat(id));
      } catch (e) {
        if (!(e instanceof AmiError) || e.code !== "M_NOT_FOUND") throw e;
      }
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Create the hold file; true when it did not exist before. */
  async #writeHold(id: string, name: string): Promise<boolean> {
    const dir = this.layout.holds(id);
    const file = join(dir, holdFile(name));
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(dir, { recursive: true });
        await writeFile(file, "", { flag: "wx" });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
        if (!isNoEnt(e) || attempt > 5) throw e; // a release of the last other hold removed the directory
      }
    }
    await this.layout.syncDir(dir);
    return true;
  }

  async hold(ref: string, name: string): Promise<void> {
    if (!name) throw new AmiError("AMI_INVALID_INPUT", "a hold needs a name");
    const id = await this.resolve(ref);
    await this.#writeHold(id, name);
    // A GC may have moved the manifest to the trash before it saw the hold: take it back ourselves.
    try {
      await stat(this.layout.object(id));
    } catch (e) {
      if (!isNoEnt(e)) throw e;
      try {
        await rename(this.layout.trash(`m-${id}`), this.layout.object(id));
      } catch {
        await this.release(id, name);
        throw notFound(ref);
      }
    }
  }

  async release(ref: string, name: string): Promise<void> {
    const id = isHex64(ref) ? ref : await this.resolve(ref);
    const dir = this.layout.holds(id);
    await unlink(join(dir, holdFile(name))).catch((e) => {
      if (!isNoEnt(e)) throw e;
    });
    await rmdir(dir).catch(() => {}); // not empty (other holds) or gone: both fine
  }

  async resolve(ref: string): Promise<string> {
    const r = ref.trim().toLowerCase();
    const exists = async (p: string) =>
      stat(p).then(
        () => true,
        () => false,
      );
    const viaSha = async (sha: string) => {
      try {
        const id = (await readFile(this.layout.bySha(sha), "utf8")).trim();
        if (isHex64(id) && (await exists(this.layout.object(id)))) return id;
      } catch {}
      return undefined;
    };
    if (isHex64(r)) {
      if ((await exists(this.layout.object(r))) || (await exists(this.layout.trash(`m-${r}`)))) return r;
      const id = await viaSha(r);
      if (id) return id;
      throw notFound(ref);
    }
    const cidSha = r.startsWith("b") ? sha256FromCid(r) : undefined;
    if (cidSha) {
      const id = await viaSha(cidSha);
      if (id) return id;
      throw notFound(ref);
    }
    if (/^[0-9a-f]{8,63}$/.test(r)) {
      const hits = (await readdir(join(this.layout.dir("objects"), r.slice(0, 2)))).filter((f) => f.startsWith(r));
      if (hits.length === 1) return hits[0];
      if (hits.length > 1) throw new AmiError("AMI_INVALID_INPUT", `'${ref}' matches ${hits.length} objects`);
      throw notFound(ref);
    }
    throw new AmiError("AMI_INVALID_INPUT", `'${ref}' is not an object id, id prefix (8+ hex), sha256 or CID`);
  }

  gc(): Promise<GcReport> {
    return collectGarbage(this);
  }

  verify(ref?: string, progress?: (done: number, total: number) => void): Promise<VerifyReport> {
    return verifyStore(this, ref, progress);
  }
}
