/** The store for a config: the filesystem backend at cas.root (default <home>/data/cas). */
import { join } from "node:path";
import type { OpContext } from "../core/ops.ts";
import { type CasConfig, casSchema } from "./config.ts";
import { FsCasStore } from "./fs-backend.ts";

export function openStore(ctx: Pick<OpContext, "config" | "paths">): FsCasStore {
  return openStoreAt(ctx.config.cas.root ?? join(ctx.paths.data, "cas"), ctx.config.cas);
}

/** The store at `root` with a config's chunking and fsync (defaults when none is given: tests, embedded use). */
export function openStoreAt(root: string, c: CasConfig = casSchema.parse({})): FsCasStore {
  return new FsCasStore({
    root,
    params: { min: c.chunkMinBytes, avg: c.chunkAvgBytes, max: c.chunkMaxBytes },
    fsync: c.fsync,
  });
}
