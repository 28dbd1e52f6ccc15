/** The store for a config: the filesystem backend at cas.root (default <home>/data/cas). */
import { join } from "node:path";
import type { OpContext } from "../core/ops.ts";
import { FsCasStore } from "./fs-backend.ts";

export function openStore(ctx: Pick<OpContext, "config" | "paths">): FsCasStore {
  const c = ctx.config.cas;
  return new FsCasStore({
    root: c.root ?? join(ctx.paths.data, "cas"),
    params: { min: c.chunkMinBytes, avg: c.chunkAvgBytes, max: c.chunkMaxBytes },
    fsync: c.fsync,
  });
}
