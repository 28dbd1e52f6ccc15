/**
 * Garbage collection and verification for the filesystem backend.
 *
 * GC never deletes a held object or a chunk that a held object or an in-flight put uses, without stopping puts:
 *  1. objects with no hold are moved to trash/, their holds looked at again (a hold taken meanwhile wins: the
 *     object goes back; `hold()` also takes it back itself), then deleted;
 *  2. mark: the chunks of every remaining object and of every live put's lease;
 *  3. unmarked chunks are moved to trash/;
 *  4. leases and the object list are read again: a put that named a chunk in its lease before step 3 is seen
 *     now (its chunk goes back); one that names it later looks for the chunk after it was moved and writes it
 *     again. Objects committed meanwhile are marked the same way;
 *  5. what is still in the trash is deleted.
 * Readers that race a move fall back to the trash path. One GC at a time (gc.lock, with the owner's pid).
 */
import { open, readdir, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { pidAlive } from "../control/proc.ts";
import { AmiError } from "../core/errors.ts";
import type { FsCasStore } from "./fs-backend.ts";
import { pidOfTemp, readLease } from "./fs-layout.ts";
import { isHex64, sha256Hex } from "./ids.ts";
import type { CorruptChunk, GcReport, VerifyReport } from "./types.ts";

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

async function chunkNames(s: FsCasStore): Promise<string[]> {
  const out: string[] = [];
  const root = s.layout.dir("chunks");
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

    // 3. move the unmarked chunks aside
    const moved: string[] = [];
    for (const h of await chunkNames(s)) {
      if (live.has(h)) continue;
      try {
        await rename(L.chunk(h), L.trash(`c-${h}`));
        moved.push(h);
      } catch (e) {
        ignoreNoEnt(e);
      }
    }

    // 4. look again at what may have started using them
    await leaseHashes(s, live);
    for (const id of await s.objectIds()) if (!marked.has(id)) await mark(id);

    // 5. delete
    for (const h of moved) {
      const t = L.trash(`c-${h}`);
      if (live.has(h)) {
        await rename(t, L.chunk(h)).catch(ignoreNoEnt);
        continue;
      }
      try {
        const { size } = await stat(t);
        await unlink(t);
        r.chunksDeleted++;
        r.bytesFreed += size;
      } catch (e) {
        ignoreNoEnt(e);
      }
    }
    r.objectsKept = marked.size;
    r.chunksKept = (await chunkNames(s)).length;
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
  const hashes = new Set(users.keys());
  if (!ref) for (const h of await chunkNames(s)) hashes.add(h);
  const corrupt: CorruptChunk[] = [];
  let bytesChecked = 0;
  let done = 0;
  for (const h of hashes) {
    const objects = users.get(h) ?? [];
    try {
      const b = await readFile(s.layout.chunk(h));
      bytesChecked += b.length;
      if (sha256Hex(b) !== h) corrupt.push({ chunk: h, objects, problem: "mismatch" });
    } catch (e) {
      if (!isNoEnt(e)) throw e;
      if (objects.length) corrupt.push({ chunk: h, objects, problem: "missing" });
    }
    if (++done % 256 === 0) progress?.(done, hashes.size);
  }
  return { objectsChecked: ids.length, chunksChecked: hashes.size, bytesChecked, corrupt, corruptObjects };
}
