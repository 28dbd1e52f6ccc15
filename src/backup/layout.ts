/** Where a runtime home keeps what a backup holds, from its config (the same rules the services use). */
import { join, resolve } from "node:path";
import type { Config } from "../config.ts";
import type { RuntimePaths } from "../core/paths.ts";
import { type DbTarget, dbTarget } from "./database.ts";

/**
 * Keys, secrets and small state of the services' data directories, as `<service>/<file>` (also their path under
 * `keys/` in a backup): the homeserver's signing key (it signs every event and request) and registration secret;
 * the media service's stream keys (hashes and their sealing secret) and its run-time state (pulls, recordings,
 * restreams).
 */
export const KEY_FILES = [
  "matrix/signing.key",
  "matrix/registration_shared_secret",
  "media/keys.json",
  "media/keys.secret",
  "media/state.json",
] as const;

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
  /** Which finished recordings are in the store, by stream path (`<recordPath>/.cas/<path>.json`). */
  recordingIndex: string;
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
    recordingIndex: join(config.media.recordPath ?? join(paths.home, "data", "media", "recordings"), ".cas"),
  };
}
