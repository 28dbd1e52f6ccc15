/**
 * Garbage collection and verification for the filesystem backend.
 *
 * GC never deletes a held object or a chunk that a held object or an in-flight put uses, without stopping puts:
 *  1. objects with no hold are moved to trash/, their holds looked at again (a hold taken meanwhile wins: the
 *     object goes back; `hold()` also takes it back itself), then deleted;
 *  2. mark: the chunks of every remaining object and of every live put's lease;
 *  3. packs that are mostly dead (live bytes < half), and small packs (merged), are moved to trash/ whole, as are
 *     chunk files of the layout before packs;
 *  4. leases and the object list are read again: a put that named a chunk in its lease before step 3 is seen
 *     now; one that names it later finds its pack gone (a put checks after naming) and writes the chunk again.
 *     Objects committed meanwhile are marked the same way;
 *  5. the live chunks of what was moved are copied into a new pack, which is named (fsync, rename) before the
 *     moved files are deleted.
 * Readers that race a move fall back to the trash path, then to a fresh look at packs/. One GC at a time
 * (gc.lock, with the owner's pid).
 */
import { open, readdir, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { pidAlive } from "../control/proc.ts";
import { AmiError } from "../core/errors.ts";
import type { FsCasStore } from "./fs-backend.ts";
import { pidOfTemp, readLease } from "./fs-layout.ts";
import { type PackEntry, PackWriter, readExact, readPackIndex } from "./fs-pack.ts";
import { isHex64, sha256Hex } from "./ids.ts";
import type { CorruptChunk, GcReport, VerifyReport } from "./types.ts";

/** A pack whose live bytes are below this share of its data is rewritten. */
const COMPACT_BELOW = 0.5;
/** Packs smaller than this (one small upload each) are merged once there are MERGE_SMALL of them. */
const SMALL_PACK = 4 * 1024 * 1024;
const MERGE_SMALL = 8;

const isNoEnt = (e: unknown) => (e as NodeJS.ErrnoException)?.code === "ENOENT";
const ignoreNoEnt = (e: unknown) => {
  if (!isNoEnt(e)) throw e;
};

async function gcLock(root: string): Promise<() => Promise<void>> {
  const path = join(root, "gc.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, "wx", 0o600);
      await fh.write(String(process.pid));
      await fh.close();
      return () => unlink(path).catch(() => {});
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = Number(await readFile(path, "utf8").catch(() => ""));
      if (pid && pidAlive(pid)) throw new AmiError("AMI_UNAVAILABLE", `a garbage collection is running (pid ${pid})`);
      await unlink(path).catch(ignoreNoEnt); // its owner died
    }
  }
  throw new AmiError("AMI_UNAVAILABLE", "could not take the GC lock");
}

/** Hashes named by the leases of puts that are still running. */
async function leaseHashes(s: FsCasStore, into: Set<string>): Promise<void> {
  const dir = s.layout.dir("tmp");
  for (const f of await readdir(dir)) {
    if (f.endsWith(".lease") && pidAlive(pidOfTemp(f))) for (const h of readLease(join(dir, f))) into.add(h);
  }
}

/** Chunk files of the layout before packs. */
async function chunkNames(s: FsCasStore): Promise<string[]> {
  const out: string[] = [];
  const root = s.layout.dir("chunks");
  if (!s.layout.legacyChunks) return out;
  for (const shard of await readdir(root))
    for (const f of await readdir(join(root, shard))) if (isHex64(f)) out.push(f);
  return out;
}

export async function collectGarbage(s: FsCasStore): Promise<GcReport> {
  const L = s.layout;
  const unlock = await gcLock(L.root);
  const r: GcReport = {
    objectsDeleted: 0,
    chunksDeleted: 0,
    bytesFreed: 0,
    objectsKept: 0,
    chunksKept: 0,
    tempFilesRemoved: 0,
  };
  try {
    // A GC that died mid-way left live things in the trash: put everything back and decide again.
    for (const f of await readdir(L.dir("trash"))) {
      const name = f.slice(2);
      const to = f.startsWith("c-") ? L.chunk(name) : f.startsWith("m-") ? L.object(name) : undefined;
      if (to && isHex64(name)) await rename(L.trash(f), to).catch(ignoreNoEnt);
      else if (f.startsWith("p-") && /^[0-9a-f]+$/.test(name))
        await rename(L.trash(f), L.pack(name)).catch(ignoreNoEnt);
      else await unlink(L.trash(f)).catch(ignoreNoEnt);
    }
    // Temp files and leases of writers that are gone (a kill -9 during put leaves these, never an object).
    for (const f of await readdir(L.dir("tmp"))) {
      if (!pidAlive(pidOfTemp(f))) {
        await unlink(join(L.dir("tmp"), f)).catch(ignoreNoEnt);
        r.tempFilesRemoved++;
      }
    }

    // 1. objects nobody holds
    const holdsOf = async (id: string) => (await readdir(L.holds(id)).catch(() => [])).length;
    for (const id of await s.objectIds()) {
      if ((await holdsOf(id)) > 0) continue;
      let sha: string | undefined;
      try {
        sha = (await s.manifest(id)).sha256;
      } catch {}
      try {
        await rename(L.object(id), L.trash(`m-${id}`));
      } catch (e) {
        ignoreNoEnt(e);
        continue;
      }
      if ((await holdsOf(id)) > 0) {
        await rename(L.trash(`m-${id}`), L.object(id)).catch(ignoreNoEnt);
        continue;
      }
      try {
        await unlink(L.trash(`m-${id}`));
      } catch (e) {
        ignoreNoEnt(e); // hold() took it back
        continue;
      }
      r.objectsDeleted++;
      // A put of the same bytes may have committed the object again meanwhile: then its index entry stays.
      const again = await stat(L.object(id)).then(
        () => true,
        () => false,
      );
      if (sha && !again) {
        const idx = L.bySha(sha);
        if ((await readFile(idx, "utf8").catch(() => "")).trim() === id) await unlink(idx).catch(ignoreNoEnt);
      }
    }

    // Holds of objects that never committed (a writer killed between its hold and its manifest), unless a
    // live put named the object in its lease before it wrote the hold.
    const committing = new Set<string>();
    const holdDirs = await readdir(L.dir("holds"));
    await leaseHashes(s, committing);
    for (const id of holdDirs) {
      if (!isHex64(id) || committing.has(`o:${id}`)) continue;
      const exists = await stat(L.object(id)).then(
        () => true,
        () => false,
      );
      if (!exists) await rm(L.holds(id), { recursive: true, force: true });
    }

    // 2. mark
    const live = new Set<string>();
    const marked = new Set<string>();
    const mark = async (id: string) => {
      marked.add(id);
      for (const [h] of (await s.manifest(id)).chunks) live.add(h);
    };
    for (const id of await s.objectIds()) await mark(id); // a corrupt manifest throws: better no GC than a wrong one
    await leaseHashes(s, live);

    // 3. move aside: sparse packs, small packs (to merge them), and every legacy chunk file
    await s.packs.refresh(true);
    const movedPacks: [string, PackEntry[]][] = [];
    const small: [string, PackEntry[]][] = [];
    for (const [name, entries] of s.packs.packs) {
      let all = 0;
      let alive = 0;
      for (const e of entries) {
        all += e.len;
        if (live.has(e.hash)) alive += e.len;
      }
      if (alive < all * COMPACT_BELOW || all === 0) movedPacks.push([name, entries]);
      else if (all < SMALL_PACK) small.push([name, entries]);
    }
    if (small.length >= MERGE_SMALL) movedPacks.push(...small);
    const moved: [string, PackEntry[]][] = [];
    for (const [name, entries] of movedPacks) {
      try {
        await rename(L.pack(name), L.trash(`p-${name}`));
        moved.push([name, entries]);
      } catch (e) {
        ignoreNoEnt(e);
      }
    }
    const movedLegacy: string[] = [];
    for (const h of await chunkNames(s)) {
      try {
        await rename(L.chunk(h), L.trash(`c-${h}`));
        movedLegacy.push(h);
      } catch (e) {
        ignoreNoEnt(e);
      }
    }

    // 4. look again at what may have started using them
    await leaseHashes(s, live);
    for (const id of await s.objectIds()) if (!marked.has(id)) await mark(id);

    // 5. copy what is live into a new pack, name it, then delete what was moved
    await s.packs.refresh(true);
    const have = new Set<string>();
    for (const entries of s.packs.packs.values()) for (const e of entries) have.add(e.hash);
    const writer = new PackWriter(L, s.packMaxBytes);
    let movedBytes = 0;
    try {
      for (const [name, entries] of moved) {
        const fh = await open(L.trash(`p-${name}`), "r");
        try {
          movedBytes += (await fh.stat()).size;
          for (const e of entries) {
            if (live.has(e.hash) && !have.has(e.hash)) {
              have.add(e.hash);
              await writer.add(e.hash, await readExact(fh, e.off, e.len));
            } else r.chunksDeleted++;
          }
        } finally {
          await fh.close();
        }
      }
      for (const h of movedLegacy) {
        const t = L.trash(`c-${h}`);
        if (live.has(h) && !have.has(h)) {
          have.add(h);
          const b = await readFile(t);
          movedBytes += b.length;
          await writer.add(h, b);
        } else {
          movedBytes += (await stat(t)).size;
          r.chunksDeleted++;
        }
      }
      await writer.finish();
    } catch (e) {
      await writer.abort();
      throw e; // what was moved stays in the trash; the next GC puts it back and decides again
    }
    for (const d of writer.done) s.packs.add(d.name, d.entries);
    for (const [name] of moved) await unlink(L.trash(`p-${name}`)).catch(ignoreNoEnt);
    for (const h of movedLegacy) await unlink(L.trash(`c-${h}`)).catch(ignoreNoEnt);
    r.bytesFreed = Math.max(0, movedBytes - writer.done.reduce((n, d) => n + d.bytes, 0));
    await s.packs.refresh(true);
    r.objectsKept = marked.size;
    r.chunksKept = s.packs.chunkCount + (await chunkNames(s)).length;
    return r;
  } finally {
    await unlock();
  }
}

/** Re-hash every chunk (or one object's) and every manifest; report what does not match. */
export async function verifyStore(
  s: FsCasStore,
  ref?: string,
  progress?: (done: number, total: number) => void,
): Promise<VerifyReport> {
  const ids = ref ? [await s.resolve(ref)] : await s.objectIds();
  const users = new Map<string, string[]>();
  const corruptObjects: string[] = [];
  for (const id of ids) {
    try {
      for (const [h] of (await s.manifest(id)).chunks) {
        const u = users.get(h);
        if (!u) users.set(h, [id]);
        else if (u[u.length - 1] !== id) u.push(id);
      }
    } catch (e) {
      if (e instanceof AmiError && e.code === "M_NOT_FOUND" && !ref) continue; // deleted by a GC meanwhile
      corruptObjects.push(id);
    }
  }
  const corrupt: CorruptChunk[] = [];
  let bytesChecked = 0;
  let done = 0;
  const found = new Set<string>();
  const check = (h: string, b: Buffer) => {
    found.add(h);
    bytesChecked += b.length;
    if (sha256Hex(b) !== h && !corrupt.some((c) => c.chunk === h))
      corrupt.push({ chunk: h, objects: users.get(h) ?? [], problem: "mismatch" });
  };
  // Every copy in every pack (one object: only its chunks), read pack by pack in file order.
  await s.packs.refresh(true);
  const packs = [...s.packs.packs.keys()];
  let total = ref ? users.size : s.packs.chunkCount;
  for (const name of packs) {
    const fh = await open(s.layout.pack(name), "r").catch((e) => {
      ignoreNoEnt(e); // compacted by a GC meanwhile: its chunks are looked up again below
    });
    if (!fh) continue;
    try {
      const entries = (await readPackIndex(s.layout.pack(name)).catch(() => s.packs.packs.get(name))) ?? [];
      for (const e of entries) {
        if (ref && !users.has(e.hash)) continue;
        check(e.hash, await readExact(fh, e.off, e.len));
        if (++done % 256 === 0) progress?.(done, total);
      }
    } finally {
      await fh.close();
    }
  }
  // Chunk files of the layout before packs, and chunks not found (moved by a GC meanwhile, or missing).
  const rest = new Set<string>(ref ? [] : await chunkNames(s));
  for (const h of users.keys()) if (!found.has(h)) rest.add(h);
  total = done + rest.size;
  for (const h of rest) {
    let b: Buffer | undefined;
    const loc = await s.locate(h);
    if (loc) {
      const fh = await open(loc.path, "r").catch(() => undefined);
      if (fh) {
        try {
          b = await readExact(fh, loc.off, loc.len);
        } catch {
          b = undefined;
        } finally {
          await fh.close();
        }
      }
    }
    if (b) check(h, b);
    else if (users.get(h)?.length) corrupt.push({ chunk: h, objects: users.get(h)!, problem: "missing" });
    if (++done % 256 === 0) progress?.(done, total);
  }
  for (const name of s.packs.bad) corruptObjects.push(`pack:${name}`);
  return {
    objectsChecked: ids.length,
    chunksChecked: found.size + corrupt.filter((c) => c.problem === "missing").length,
    bytesChecked,
    corrupt,
    corruptObjects,
  };
}
