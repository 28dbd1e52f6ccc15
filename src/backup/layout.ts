/** Where a runtime home keeps what a backup holds, from its config (the same rules the services use). */
import { join, resolve } from "node:path";
import type { Config } from "../config.ts";
import type { RuntimePaths } from "../core/paths.ts";
import { type DbTarget, dbTarget } from "./database.ts";

/** Key and secret files of the homeserver's data directory (the signing key signs every event and request). */
export const KEY_FILES = ["signing.key", "registration_shared_secret"] as const;

export interface HomeLayout {
  home: string;
  /** The homeserver's data directory (<home>/data/matrix). */
  dataDir: string;
  db: DbTarget;
  casRoot: string;
  /** Matrix media from before the content-addressed store. */
  mediaDir: string;
  /** Backups (backup.dir, default <home>/backups). */
  backupDir: string;
}

export function homeLayout(config: Config, paths: RuntimePaths, database = config.matrix.database): HomeLayout {
  const dataDir = join(paths.home, "data", "matrix");
  return {
    home: paths.home,
    dataDir,
    db: dbTarget(database, dataDir),
    casRoot: config.cas.root ?? join(paths.home, "data", "cas"),
    mediaDir: config.matrix.media.storePath ?? join(dataDir, "media"),
    backupDir: resolve(paths.home, config.backup.dir ?? "backups"),
  };
}
