/** Debounced snapshots of an agent's IndexedDB databases (sync store, then crypto store) to one file. */
import type { IndexedDBStore } from "matrix-js-sdk";
import type { Logger } from "../core/logger.ts";
import { deleteDatabases, dumpDatabases, encodeSnapshot, writeSnapshotFile } from "./idb-snapshot.ts";

export interface PersistenceOptions {
  factory: IDBFactory;
  store: IndexedDBStore;
  /** Database name prefixes, dependents first (see dumpDatabases). */
  prefixes: readonly string[];
  file: string;
  delayMs: number;
  release: () => void;
  log: Logger | undefined;
}

/** Debounced, serialised snapshots of the agent's IndexedDB databases to one file. */
export class Persistence {
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  #last: Buffer | undefined;
  #closed = false;
  readonly #o: PersistenceOptions;
  constructor(o: PersistenceOptions) {
    this.#o = o;
  }

  schedule(): void {
    if (this.#closed || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.save().catch((e) => this.#o.log?.error("agent store snapshot failed", { error: String(e) }));
    }, this.#o.delayMs);
  }

  save(): Promise<void> {
    const run = async () => {
      await this.#o.store.save(true);
      const bytes = encodeSnapshot(await dumpDatabases(this.#o.factory, this.#o.prefixes));
      if (this.#last?.equals(bytes)) return;
      writeSnapshotFile(this.#o.file, bytes);
      this.#last = bytes;
    };
    this.#chain = this.#chain.then(run, run);
    return this.#chain;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    try {
      // A save while the SDK's own persist is in flight only joins it: the second one writes the latest state.
      await this.#o.store.save(true);
      await this.save();
      await this.#o.store.destroy();
      for (const p of this.#o.prefixes)
        await deleteDatabases(this.#o.factory, p).catch((e) =>
          this.#o.log?.warn("agent store not freed", { error: String(e) }),
        );
    } finally {
      this.#o.release();
    }
  }
}

/** The process-wide IndexedDB: the real one if there is one, else fake-indexeddb installed as the global. */
export async function indexedDBFactory(): Promise<IDBFactory> {
  // A variable specifier: the package's "./auto" export ships no type declarations.
  const polyfill = "fake-indexeddb/auto";
  if (!globalThis.indexedDB) await import(polyfill);
  return globalThis.indexedDB;
}
