/** Open the store named by the `database` config value and bring its schema up to date. */
import { resolve } from "node:path";
import { AmiError } from "../../core/errors.ts";
import type { Store } from "./types.ts";

/**
 * `database`: "sqlite" (the file `<dataDir>/homeserver.db`), "sqlite:<path>" (":memory:" allowed; a relative
 * path is relative to dataDir, so it does not depend on where the daemon was started) or a "postgres://" /
 * "postgresql://" URL (`?schema=name` picks the schema, default ami_matrix).
 */
export async function openStore(database: string, dataDir: string): Promise<Store> {
  let store: Store;
  if (database === "sqlite" || database.startsWith("sqlite:")) {
    const given = database === "sqlite" ? "homeserver.db" : database.slice("sqlite:".length);
    if (!given) throw new AmiError("AMI_INVALID_CONFIG", "'database': sqlite: needs a path, e.g. sqlite::memory:");
    const path = given === ":memory:" ? given : resolve(dataDir, given);
    const { SqliteStore } = await import("./sqlite/store.ts");
    store = new SqliteStore(path);
  } else if (/^postgres(ql)?:\/\//.test(database)) {
    // Loaded on demand: the embedded default never pays for the pg driver.
    const { PostgresStore } = await import("./postgres/store.ts");
    store = new PostgresStore(database);
  } else {
    throw new AmiError(
      "AMI_INVALID_CONFIG",
      `'database' must be "sqlite", "sqlite:<path>" or a postgres:// URL, got ${JSON.stringify(database)}`,
    );
  }
  await store.init();
  return store;
}
