/**
 * `backup create`: the database first, then the content-addressed store, legacy media, keys and config, then a
 * manifest with the size and SHA-256 of every file. Written under `.<name>.partial` and renamed when complete, so
 * an interrupted backup never looks like one (`.<name>.partial.pid` names the process writing it: the next create
 * removes a partial whose process is gone).
 *
 * Order: the database dump is one snapshot; media bytes are stored (and fsynced) before their row is committed and
 * never change afterwards, so every object a row in the snapshot names already exists when the store is copied
 * after it. Copying the store first would miss the bytes of uploads recorded between the two. Only media deleted
 * (and garbage-collected) between the dump and the copy can be absent; the manifest lists them under cas.missing.
 */
import { existsSync, readFileSync } from "node:fs";
import { copyFile, cp, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { openStoreAt } from "../cas/open.ts";
import type { Config } from "../config.ts";
import { repoRoot } from "../control/bin-path.ts";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { RuntimePaths } from "../core/paths.ts";
import { copyCas } from "./cas-copy.ts";
import { pgDump, pgToolVersion, sqliteDump } from "./database.ts";
import { type BackupManifest, FORMAT, hashFile, listFiles, writeManifest } from "./files.ts";
import { homeLayout, KEY_FILES } from "./layout.ts";
import { sqliteCheckOffThread } from "./sqlite-check.ts";
import { packTar } from "./tar.ts";

export interface CreateOptions {
  config: Config;
  configPath: string | undefined;
  paths: RuntimePaths;
  log: Logger;
  /** Directory the backup goes in (default backup.dir). */
  dir?: string;
  /** Its name (default `ami-backup-<UTC time>`). */
  name?: string;
  tar?: boolean;
  progress?: (done: number, total: number | undefined, message?: string) => void;
  signal?: AbortSignal;
}

export interface CreateResult {
  path: string;
  name: string;
  files: number;
  bytes: number;
  events: number;
  casObjects: number;
  durationMs: number;
  database: string;
}

export const backupName = (d = new Date()): string =>
  `ami-backup-${d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.(\d{3})Z$/, "$1Z")}`;

function amiVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

export async function createBackup(o: CreateOptions): Promise<CreateResult> {
  const t0 = performance.now();
  const progress = o.progress ?? (() => {});
  const lay = homeLayout(o.config, o.paths);
  const dir = o.dir ?? lay.backupDir;
  const name = o.name ?? backupName();
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    throw new AmiError("AMI_INVALID_INPUT", `backup name '${name}' may hold only letters, digits, '.', '_' and '-'`);
  const final = join(dir, o.tar ? `${name}.tar` : name);
  if (existsSync(final)) throw new AmiError("AMI_INVALID_INPUT", `${final} already exists`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await removeStalePartials(dir);
  const work = join(dir, `.${name}.partial`);
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, "db"), { recursive: true, mode: 0o700 });
  await writeFile(`${work}.pid`, `${process.pid}\n`, { mode: 0o600 });
  try {
    // 1. The database: one consistent snapshot.
    progress(0, undefined, "database");
    let database: BackupManifest["database"];
    if (lay.db.backend === "sqlite") {
      const file = "db/homeserver.sqlite";
      await sqliteDump(lay.db.path, join(work, file));
      // Off the main thread: the check reads the whole copy (seconds at 1 M events), and the backup service must
      // answer its health checks meanwhile. The two progress calls bracket it (a test counts turns in between).
      progress(0, 1, "checking");
      const check = await sqliteCheckOffThread(join(work, file), true);
      progress(1, 1, "checking");
      database = { backend: "sqlite", file, ...check, tool: `node:sqlite backup (SQLite ${sqliteVersion()})` };
    } else {
      const file = "db/homeserver.pgdump";
      const check = await pgDump(lay.db, join(work, file), o.signal);
      database = { backend: "postgres", file, schema: lay.db.schema, ...check, tool: await pgToolVersion() };
    }
    o.log.info("backup: database dumped", { backend: database.backend, events: database.events });

    // 2. Content-addressed objects (Matrix media, recordings, pins), each verified as it is read.
    let cas = { objects: 0, bytes: 0, missing: [] as string[] };
    if (existsSync(join(lay.casRoot, "objects"))) {
      const r = await copyCas(
        openStoreAt(lay.casRoot, o.config.cas),
        join(work, "cas"),
        (d, t) => progress(d, t, "objects"),
        o.signal,
      );
      cas = { objects: r.objects, bytes: r.bytes, missing: [] };
    }

    // 3. Media files from before the store, keys, config.
    let legacyMedia = 0;
    if (existsSync(lay.mediaDir)) {
      await cp(lay.mediaDir, join(work, "media"), { recursive: true, filter: (s) => !s.endsWith(".tmp") });
      legacyMedia = existsSync(join(work, "media")) ? (await listFiles(join(work, "media"))).length : 0;
    }
    const keys: string[] = [];
    for (const k of KEY_FILES) {
      const from = join(lay.home, "data", k);
      if (!existsSync(from)) continue;
      await mkdir(dirname(join(work, "keys", k)), { recursive: true, mode: 0o700 });
      await copyFile(from, join(work, "keys", k));
      keys.push(k);
    }
    // Which recordings are in the store (their objects were copied with the rest of the store).
    if (existsSync(lay.recordingIndex))
      await cp(lay.recordingIndex, join(work, "recordings-index"), { recursive: true });
    let config: string | null = null;
    if (o.configPath && existsSync(o.configPath)) {
      await mkdir(join(work, "config"), { recursive: true, mode: 0o700 });
      await copyFile(o.configPath, join(work, "config", "config.yaml"));
      config = "config/config.yaml";
    }
    if (database.backend === "sqlite") cas.missing = missingMedia(work, database.file);

    // 4. The manifest: every file's size and SHA-256 (fsynced as it is hashed).
    const names = await listFiles(work);
    const files: BackupManifest["files"] = [];
    let bytes = 0;
    for (const [i, f] of names.entries()) {
      files.push({ path: f, ...(await hashFile(join(work, f), true)) });
      bytes += files[files.length - 1].size;
      progress(i + 1, names.length, "hashing");
    }
    const durationMs = Math.round(performance.now() - t0);
    await writeManifest(work, {
      format: FORMAT,
      version: 1,
      name,
      createdAt: new Date().toISOString(),
      amiStreams: amiVersion(),
      node: process.version,
      serverName: o.config.matrix.serverName,
      database,
      cas,
      legacyMedia,
      keys,
      config,
      durationMs,
      files,
    });
    if (o.tar) {
      await packTar(work, final);
      await rm(work, { recursive: true, force: true });
    } else await rename(work, final);
    await rm(`${work}.pid`, { force: true });
    return {
      path: final,
      name,
      files: files.length + 1,
      bytes,
      events: database.events,
      casObjects: cas.objects,
      durationMs: Math.round(performance.now() - t0),
      database: database.backend,
    };
  } catch (e) {
    await rm(work, { recursive: true, force: true }).catch(() => {});
    await rm(`${work}.pid`, { force: true }).catch(() => {});
    throw e;
  }
}

/**
 * `.<name>.partial` directories of creates that were killed (a `.pid` file beside each names its process, now gone):
 * as large as the database each, and a backup service killed mid-backup left one per attempt. One whose process
 * still runs is another create in progress; one without a `.pid` file is left alone.
 */
async function removeStalePartials(dir: string): Promise<void> {
  for (const f of await readdir(dir)) {
    if (!/^\..+\.partial\.pid$/.test(f)) continue;
    const pid = Number((await readFile(join(dir, f), "utf8").catch(() => "")).trim());
    if (!Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
    await rm(join(dir, f.slice(0, -".pid".length)), { recursive: true, force: true });
    await rm(join(dir, f), { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function sqliteVersion(): string {
  const db = new DatabaseSync(":memory:");
  try {
    return (db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;
  } finally {
    db.close();
  }
}

/** Media rows of the dumped SQLite database whose bytes are in neither the copied store nor the legacy media. */
function missingMedia(work: string, dbFile: string): string[] {
  const db = new DatabaseSync(join(work, dbFile), { readOnly: true });
  try {
    const rows = db.prepare("SELECT media_id, sha256 FROM media").all() as { media_id: string; sha256: string }[];
    return rows
      .filter(
        (r) =>
          !existsSync(join(work, "cas", "by-sha256", r.sha256.slice(0, 2), r.sha256)) &&
          !existsSync(join(work, "media", r.media_id.slice(0, 2), r.media_id)),
      )
      .map((r) => r.media_id);
  } finally {
    db.close();
  }
}
