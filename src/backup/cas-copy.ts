/**
 * Objects of one content-addressed store copied into another, object by object: every chunk is verified as it is
 * read (CasStore.get), written again with the object's own chunk parameters, and the new id must equal the old
 * (same bytes, same chunking, same manifest), so a copy is exactly the source. Holds (pins, Matrix media) follow.
 */

import type { FsCasStore } from "../cas/fs-backend.ts";
import { openStoreAt } from "../cas/open.ts";
import { isAmiError } from "../core/errors.ts";

export interface CasCopyReport {
  objects: number;
  bytes: number;
  /** Objects deleted (unheld, by GC) between listing and copying. */
  vanished: string[];
}

export async function copyCas(
  src: FsCasStore,
  dstRoot: string,
  progress: (done: number, total: number) => void = () => {},
  signal?: AbortSignal,
): Promise<CasCopyReport> {
  const stores = new Map<string, FsCasStore>();
  const storeFor = (p: { min: number; avg: number; max: number }) => {
    const k = `${p.min}/${p.avg}/${p.max}`;
    let s = stores.get(k);
    if (!s) {
      // Without fsync per object: the backup fsyncs every file once as it hashes them for its manifest.
      s = openStoreAt(dstRoot, {
        root: dstRoot,
        chunkMinBytes: p.min,
        chunkAvgBytes: p.avg,
        chunkMaxBytes: p.max,
        fsync: false,
      });
      stores.set(k, s);
    }
    return s;
  };
  const list = await src.list();
  const report: CasCopyReport = { objects: 0, bytes: 0, vanished: [] };
  let done = 0;
  for (const o of list) {
    signal?.throwIfAborted();
    try {
      const m = await src.manifest(o.id);
      const dst = storeFor(m.params);
      const [first, ...rest] = o.holds;
      const r = await dst.put(src.get(o.id), { hold: first, signal });
      if (r.id !== o.id)
        throw new Error(`object ${o.id} copied as ${r.id}: the copy does not reproduce the source's manifest`);
      for (const h of rest) await dst.hold(o.id, h);
      report.objects++;
      report.bytes += m.size;
    } catch (e) {
      if (isAmiError(e) && e.code === "M_NOT_FOUND") report.vanished.push(o.id);
      else throw e;
    }
    progress(++done, list.length);
  }
  return report;
}
