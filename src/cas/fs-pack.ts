/**
 * Pack files: many chunks in one file, so a put costs a handful of syscalls and one fsync instead of a file (open,
 * write, fsync, rename) per chunk.
 *
 *   <root>/packs/<name>.pack   [chunk bytes ...][index][trailer]
 *     index:   count x (sha256 32 bytes | offset u64 BE | length u32 BE)
 *     trailer: sha256 of the index (32) | count u32 BE | reserved u32 | "AMIPACK1"
 *
 * A pack is written under tmp/ and renamed into packs/ whole (data and index are one file, so one rename), which
 * is why a kill -9 leaves a temp file (GC removes it) and never a pack without its index. Packs never change once
 * named; GC compacts by copying the live chunks of sparse packs into a new pack and deleting the old (fs-gc.ts).
 */
import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { type FileHandle, open, readdir, rename, unlink } from "node:fs/promises";
import { AmiError } from "../core/errors.ts";
import type { FsLayout } from "./fs-layout.ts";
import { sha256Hex } from "./ids.ts";

const MAGIC = Buffer.from("AMIPACK1");
const ENTRY = 44;
const TRAILER = 48;
/** Chunks are gathered into one writev of about this much. */
const FLUSH_BYTES = 256 * 1024;

export interface PackEntry {
  hash: string;
  off: number;
  len: number;
}

export interface Loc extends PackEntry {
  pack: string;
}

const isNoEnt = (e: unknown) => (e as NodeJS.ErrnoException)?.code === "ENOENT";

function encodeIndex(entries: PackEntry[]): Buffer {
  const b = Buffer.alloc(entries.length * ENTRY + TRAILER);
  entries.forEach((e, i) => {
    const at = i * ENTRY;
    b.write(e.hash, at, 32, "hex");
    b.writeBigUInt64BE(BigInt(e.off), at + 32);
    b.writeUInt32BE(e.len, at + 40);
  });
  const idx = b.subarray(0, entries.length * ENTRY);
  const t = entries.length * ENTRY;
  b.write(sha256Hex(idx), t, 32, "hex");
  b.writeUInt32BE(entries.length, t + 32);
  MAGIC.copy(b, t + 40);
  return b;
}

/** The index of a pack file; throws AMI_CORRUPT when its trailer or index does not check out. */
export async function readPackIndex(path: string): Promise<PackEntry[]> {
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    const bad = (why: string) => new AmiError("AMI_CORRUPT", `pack ${path} is corrupt: ${why}`);
    if (size < TRAILER) throw bad("too short");
    const t = Buffer.alloc(TRAILER);
    await fh.read(t, 0, TRAILER, size - TRAILER);
    if (!t.subarray(40).equals(MAGIC)) throw bad("no trailer");
    const count = t.readUInt32BE(32);
    const start = size - TRAILER - count * ENTRY;
    if (start < 0) throw bad("index larger than the file");
    const idx = Buffer.alloc(count * ENTRY);
    await fh.read(idx, 0, idx.length, start);
    if (sha256Hex(idx) !== t.toString("hex", 0, 32)) throw bad("index does not match its hash");
    const out: PackEntry[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const at = i * ENTRY;
      const off = Number(idx.readBigUInt64BE(at + 32));
      const len = idx.readUInt32BE(at + 40);
      if (off + len > start) throw bad("entry outside the data");
      out[i] = { hash: idx.toString("hex", at, at + 32), off, len };
    }
    return out;
  } finally {
    await fh.close();
  }
}

interface Open {
  tmp: string;
  fh?: FileHandle;
  entries: PackEntry[];
  /** Bytes appended (data region). */
  size: number;
  pending: Buffer[];
  pendingAt: number;
  pendingBytes: number;
}

/**
 * Appends chunks to a pack under tmp/ (a new pack past `maxBytes`), and names each finished pack in packs/. I/O is
 * serialised on one queue; `add` resolves once its chunk is written or buffered, which bounds what is held.
 */
export class PackWriter {
  readonly #layout: FsLayout;
  readonly #maxBytes: number;
  #cur: Open | undefined;
  #queue: Promise<void> = Promise.resolve();
  #failed: unknown;
  /** Packs named in packs/ so far, with their entries. */
  readonly done: { name: string; entries: PackEntry[]; bytes: number }[] = [];

  constructor(layout: FsLayout, maxBytes: number) {
    this.#layout = layout;
    this.#maxBytes = maxBytes;
  }

  #enqueue(f: () => Promise<void>): Promise<void> {
    this.#queue = this.#queue.then(async () => {
      if (this.#failed) throw this.#failed;
      try {
        await f();
      } catch (e) {
        this.#failed ??= e;
        throw e;
      }
    });
    return this.#queue;
  }

  add(hash: string, bytes: Buffer): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    this.#cur ??= {
      tmp: this.#layout.tempName("tmp"),
      entries: [],
      size: 0,
      pending: [],
      pendingAt: 0,
      pendingBytes: 0,
    };
    const p = this.#cur;
    p.entries.push({ hash, off: p.size, len: bytes.length });
    p.pending.push(bytes);
    p.size += bytes.length;
    p.pendingBytes += bytes.length;
    if (p.size >= this.#maxBytes) {
      this.#cur = undefined;
      return this.#enqueue(() => this.#seal(p));
    }
    if (p.pendingBytes >= FLUSH_BYTES) return this.#enqueue(() => this.#flush(p));
    return Promise.resolve();
  }

  async #flush(p: Open): Promise<void> {
    if (!p.pending.length) return;
    const bufs = p.pending;
    const at = p.pendingAt;
    p.pending = [];
    p.pendingAt += p.pendingBytes;
    p.pendingBytes = 0;
    p.fh ??= await open(p.tmp, "wx", 0o600);
    let done = 0;
    const total = bufs.reduce((n, b) => n + b.length, 0);
    while (done < total) {
      // writev may write less than asked (rare, large batches): go on from where it stopped.
      let skip = done;
      const rest: Buffer[] = [];
      for (const b of bufs) {
        if (skip >= b.length) skip -= b.length;
        else {
          rest.push(skip ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      done += (await p.fh.writev(rest, at + done)).bytesWritten;
    }
  }

  async #seal(p: Open): Promise<void> {
    await this.#flush(p);
    const idx = encodeIndex(p.entries);
    p.fh ??= await open(p.tmp, "wx", 0o600);
    try {
      await p.fh.write(idx, 0, idx.length, p.size);
      if (this.#layout.fsync) await p.fh.datasync();
    } finally {
      await p.fh.close();
      p.fh = undefined;
    }
    const name = randomBytes(12).toString("hex");
    await rename(p.tmp, this.#layout.pack(name));
    this.done.push({ name, entries: p.entries, bytes: p.size + idx.length });
  }

  /** Name the last pack; after this every chunk added is in a pack in packs/ (durable once the caller syncs the dir). */
  async finish(): Promise<void> {
    const p = this.#cur;
    this.#cur = undefined;
    if (p) await this.#enqueue(() => this.#seal(p));
    else await this.#enqueue(async () => {});
    await this.#layout.syncDir(this.#layout.dir("packs"));
  }

  /** Drop the pack being written (after a failure); packs already named stay for GC to judge. */
  async abort(): Promise<void> {
    await this.#queue.catch(() => {});
    const p = this.#cur;
    this.#cur = undefined;
    if (!p) return;
    await p.fh?.close().catch(() => {});
    await unlink(p.tmp).catch(() => {});
  }
}

/**
 * Where each chunk is: every pack's index, loaded once and refreshed when packs/ changes (another process's put or
 * GC). A stale answer is safe: callers check the pack still exists, and a reader that misses refreshes and retries.
 */
export class PackIndex {
  readonly #layout: FsLayout;
  /** Packs in packs/, with their entries. */
  readonly packs = new Map<string, PackEntry[]>();
  /** Packs a GC has moved to the trash and not yet deleted: still readable, never relied on by a put. */
  readonly moving = new Map<string, PackEntry[]>();
  /** Packs whose index failed its check (verify reports them). */
  readonly bad = new Set<string>();
  readonly #where = new Map<string, Loc>();
  #stamp = -1n;
  #scan: Promise<void> | undefined;

  constructor(layout: FsLayout) {
    this.#layout = layout;
  }

  get(hash: string): Loc | undefined {
    return this.#where.get(hash);
  }

  get chunkCount(): number {
    let n = 0;
    for (const e of this.packs.values()) n += e.length;
    return n;
  }

  /** The chunk's pack is still in place (GC has not moved it aside). */
  has(hash: string): boolean {
    const loc = this.#where.get(hash);
    return !!loc && existsSync(this.#layout.pack(loc.pack));
  }

  add(name: string, entries: PackEntry[]): void {
    this.packs.set(name, entries);
    for (const e of entries) if (!this.#where.has(e.hash)) this.#where.set(e.hash, { pack: name, ...e });
  }

  /** Load packs that appeared and forget packs that went; `force` looks even when the directory's mtime is unchanged. */
  refresh(force = false): Promise<void> {
    if (!this.#scan)
      this.#scan = this.#rescan(force).finally(() => {
        this.#scan = undefined;
      });
    else if (force) return this.#scan.then(() => this.refresh(true));
    return this.#scan;
  }

  async #rescan(force: boolean): Promise<void> {
    const L = this.#layout;
    const stamp = statSync(L.dir("packs"), { bigint: true }).mtimeNs;
    if (!force && stamp === this.#stamp) return;
    this.#stamp = stamp;
    const names = new Set(
      (await readdir(L.dir("packs"))).filter((f) => f.endsWith(".pack")).map((f) => f.slice(0, -5)),
    );
    const trashed = new Set((await readdir(L.dir("trash"))).filter((f) => f.startsWith("p-")).map((f) => f.slice(2)));
    let changed = false;
    for (const [n, entries] of this.packs) {
      if (names.has(n)) continue;
      this.packs.delete(n);
      if (trashed.has(n)) this.moving.set(n, entries);
      changed = true;
    }
    for (const [n, entries] of this.moving) {
      if (trashed.has(n) && !names.has(n)) continue;
      this.moving.delete(n);
      if (names.has(n)) this.packs.set(n, entries); // a GC put it back
      changed = true;
    }
    if (changed) {
      this.#where.clear();
      for (const m of [this.packs, this.moving])
        for (const [n, entries] of m)
          for (const e of entries) if (!this.#where.has(e.hash)) this.#where.set(e.hash, { pack: n, ...e });
    }
    for (const [dir, want] of [
      [this.packs, names],
      [this.moving, trashed],
    ] as const) {
      for (const n of want) {
        if (this.packs.has(n) || this.moving.has(n) || this.bad.has(n)) continue;
        try {
          const entries = await readPackIndex(dir === this.packs ? L.pack(n) : L.trash(`p-${n}`));
          dir.set(n, entries);
          for (const e of entries) if (!this.#where.has(e.hash)) this.#where.set(e.hash, { pack: n, ...e });
        } catch (e) {
          if (isNoEnt(e)) continue; // moved meanwhile: the next look finds it where it went
          if (e instanceof AmiError && e.code === "AMI_CORRUPT") this.bad.add(n);
          else throw e;
        }
      }
    }
  }
}

/** Open a pack for reading where it is, or in the trash if GC is compacting it right now; undefined if neither. */
export async function openPack(layout: FsLayout, name: string): Promise<FileHandle | undefined> {
  for (const p of [layout.pack(name), layout.trash(`p-${name}`)]) {
    try {
      return await open(p, "r");
    } catch (e) {
      if (!isNoEnt(e)) throw e;
    }
  }
  return undefined;
}

/** Read exactly `len` bytes at `off`. */
export async function readExact(fh: FileHandle, off: number, len: number, into?: Buffer): Promise<Buffer> {
  const b = into ?? Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(b, got, len - got, off + got);
    if (bytesRead === 0) throw new AmiError("AMI_CORRUPT", `pack ends before ${off + len}`);
    got += bytesRead;
  }
  return b;
}
