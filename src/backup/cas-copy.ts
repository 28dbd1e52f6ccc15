/**
 * Objects of one content-addressed store copied into a fresh one at the chunk level: each manifest is read and
 * checked against its id, each chunk's bytes come through CasStore.get (verified against its hash before it is
 * handed out) and go into the new store's packs once, the manifest is written byte for byte (so ids are unchanged)
 * with its sha256 index, and the object's holds (pins, Matrix media) follow. No re-chunking, no re-hashing of whole
 * files: the copy is exactly the source.
 */

import { FsCasStore } from "../cas/fs-backend.ts";
import { PackWriter } from "../cas/fs-pack.ts";
import { encodeManifest, manifestId } from "../cas/manifest.ts";
import { AmiError, isAmiError } from "../core/errors.ts";

export interface CasCopyReport {
  objects: number;
  bytes: number;
  /** Objects deleted (unheld, by GC) between listing and copying. */
  vanished: string[];
}

/** A new pack past this many bytes (the store's own default). */
const PACK_MAX_BYTES = 128 * 1024 * 1024;

export async function copyCas(
  src: FsCasStore,
  dstRoot: string,
  progress: (done: number, total: number) => void = () => {},
  signal?: AbortSignal,
): Promise<CasCopyReport> {
  // Without fsync per file: the backup fsyncs every file once as it hashes them for its manifest.
  const dst = new FsCasStore({ root: dstRoot, params: src.params, fsync: false });
  const writer = new PackWriter(dst.layout, PACK_MAX_BYTES);
  const stored = new Set<string>();
  const list = await src.list();
  const report: CasCopyReport = { objects: 0, bytes: 0, vanished: [] };
  let done = 0;
  try {
    for (const o of list) {
      signal?.throwIfAborted();
      try {
        const m = await src.manifest(o.id);
        let i = 0;
        for await (const b of src.get(o.id)) {
          const [h, size] = m.chunks[i++] ?? [];
          if (b.length !== size)
            throw new AmiError("AMI_INTERNAL", `object ${o.id}: a read did not yield whole chunks (backup copy)`);
          if (stored.has(h)) continue;
          stored.add(h);
          await writer.add(h, b);
        }
        const bytes = encodeManifest(m);
        if (manifestId(bytes) !== o.id)
          throw new AmiError("AMI_CORRUPT", `manifest ${o.id} does not re-encode to its id`);
        await dst.layout.writeAtomic(dst.layout.object(o.id), bytes);
        await dst.layout.writeAtomic(dst.layout.bySha(m.sha256), Buffer.from(o.id));
        for (const h of o.holds) await dst.hold(o.id, h);
        report.objects++;
        report.bytes += m.size;
      } catch (e) {
        if (isAmiError(e) && e.code === "M_NOT_FOUND") report.vanished.push(o.id);
        else throw e;
      }
      progress(++done, list.length);
    }
    await writer.finish();
  } finally {
    await writer.abort();
  }
  return report;
}
