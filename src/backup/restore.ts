/**
 * `backup restore`: verify first (nothing is touched from a damaged backup), refuse a home that already holds a
 * homeserver (database, store objects or signing key) unless forced, then the database, the store, legacy media,
 * keys and (when the home has none) the config. The homeserver must not be running on the target meanwhile.
 */
import { existsSync, readdirSync } from "node:fs";
import { chmod, copyFile, cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import YAML from "yaml";
import type { Config } from "../config.ts";
import { hasMarkers, homeProcesses } from "../control/proc.ts";
import { AmiError } from "../core/errors.ts";
import type { RuntimePaths } from "../core/paths.ts";
import { pgEvents, pgHasData, pgRestore, sqliteHasData, sqliteRestore } from "./database.ts";
import { homeLayout, KEY_FILES } from "./layout.ts";
import { assertIntact, verifyDir } from "./verify.ts";

export interface RestoreOptions {
  config: Config;
  configPath: string | undefined;
  paths: RuntimePaths;
  /** Overrides matrix.database of the config in effect. */
  database?: string;
  force?: boolean;
  progress?: (done: number, total: number | undefined, message?: string) => void;
}

export interface RestoreResult {
  name: string;
  home: string;
  database: string;
  events: number;
  casObjects: number;
  keys: string[];
  /** Where the backup's config was written, or why it was not. */
  config: string;
}

const hasObjects = (root: string) => {
  try {
    return readdirSync(join(root, "objects")).some((d) => readdirSync(join(root, "objects", d)).length > 0);
  } catch {
    return false;
  }
};

export async function restoreDir(dir: string, o: RestoreOptions): Promise<RestoreResult> {
  const progress = o.progress ?? (() => {});
  const { result, manifest: m } = await verifyDir(dir, progress);
  assertIntact(result, dir);
  const database = o.database ?? o.config.matrix.database;
  const lay = homeLayout(o.config, o.paths, database);
  if (lay.db.backend !== m.database.backend)
    throw new AmiError(
      "AMI_INVALID_INPUT",
      `the backup holds a ${m.database.backend} database but the target is ${lay.db.backend} ('matrix.database' = ${database.replace(/\/\/[^@/]*@/, "//***@")}); pass --database with a ${m.database.backend === "postgres" ? "postgres:// URL" : "sqlite path"}`,
    );

  const running = homeProcesses(lay.home).find((p) => hasMarkers(p.argv, ["serve", "matrix"]));
  if (running)
    throw new AmiError(
      "AMI_UNAVAILABLE",
      `the homeserver of ${lay.home} is running (pid ${running.pid}): stop it first (ami-streams matrix stop)`,
    );
  const present: string[] = [];
  if (lay.db.backend === "sqlite" ? sqliteHasData(lay.db.path) : await pgHasData(lay.db))
    present.push(lay.db.backend === "sqlite" ? lay.db.path : `schema ${lay.db.schema} of ${lay.db.where}`);
  if (hasObjects(lay.casRoot)) present.push(`objects in ${lay.casRoot}`);
  if (existsSync(join(lay.dataDir, "signing.key"))) present.push(join(lay.dataDir, "signing.key"));
  if (present.length && !o.force)
    throw new AmiError(
      "AMI_BACKUP_TARGET_NOT_EMPTY",
      `the target home ${lay.home} is not empty (${present.join("; ")}); restore into an empty home, or pass --force to overwrite (stop the homeserver first)`,
    );

  progress(0, undefined, "database");
  await mkdir(lay.dataDir, { recursive: true, mode: 0o700 });
  const dump = join(dir, m.database.file);
  if (lay.db.backend === "sqlite") {
    await mkdir(dirname(lay.db.path), { recursive: true, mode: 0o700 });
    await sqliteRestore(dump, lay.db.path);
  } else {
    await pgRestore(lay.db, dump, m.database.schema ?? "ami_matrix", o.force ?? false);
    const n = await pgEvents(lay.db);
    if (n !== m.database.events)
      throw new AmiError(
        "AMI_BACKUP_CORRUPT",
        `restored ${n} events into ${lay.db.where}, the manifest says ${m.database.events}`,
      );
  }

  progress(0, undefined, "objects");
  // The backup's store is a complete, verified store: its files are copied as they are (packs, manifests, holds).
  if (existsSync(join(dir, "cas"))) {
    await mkdir(lay.casRoot, { recursive: true, mode: 0o700 });
    await cp(join(dir, "cas"), lay.casRoot, { recursive: true, force: true });
  }
  if (existsSync(join(dir, "media"))) await cp(join(dir, "media"), lay.mediaDir, { recursive: true, force: true });
  for (const k of m.keys) {
    if (!(KEY_FILES as readonly string[]).includes(k)) continue;
    const to = join(lay.home, "data", k);
    await mkdir(dirname(to), { recursive: true, mode: 0o700 });
    await copyFile(join(dir, "keys", k), to);
    await chmod(to, 0o600);
  }
  if (existsSync(join(dir, "recordings-index")))
    await cp(join(dir, "recordings-index"), lay.recordingIndex, { recursive: true, force: true });

  let config = "none in the backup";
  if (m.config) {
    const target = join(lay.home, "config.yaml");
    if (o.configPath || existsSync(target)) config = `kept the config in effect (${o.configPath ?? target})`;
    else {
      // The backup's config, pointed at where this restore put things (the home, database, store and media may
      // all differ from the machine the backup came from).
      const doc = YAML.parseDocument(await readFile(join(dir, m.config), "utf8"));
      if (doc.hasIn(["matrix", "database"]) || database !== "sqlite") doc.setIn(["matrix", "database"], database);
      if (doc.hasIn(["home"])) doc.setIn(["home"], lay.home);
      if (doc.hasIn(["cas", "root"])) doc.setIn(["cas", "root"], o.config.cas.root);
      if (doc.hasIn(["matrix", "media", "storePath"]))
        doc.setIn(["matrix", "media", "storePath"], o.config.matrix.media.storePath);
      await writeFile(target, doc.toString(), { mode: 0o600 });
      config = target;
    }
  }
  return {
    name: m.name,
    home: lay.home,
    database: lay.db.backend === "sqlite" ? lay.db.path : `${lay.db.where} schema ${lay.db.schema}`,
    events: m.database.events,
    casObjects: m.cas.objects,
    keys: m.keys,
    config,
  };
}
