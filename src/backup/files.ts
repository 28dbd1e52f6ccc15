/** Files of a backup: listing, hashing (SHA-256, optionally fsyncing what was just written) and the manifest. */
import { createHash } from "node:crypto";
import { open, readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { AmiError } from "../core/errors.ts";

export const FORMAT = "ami-streams-backup";
export const MANIFEST = "manifest.json";

export interface BackupFile {
  /** Relative to the backup's root, `/`-separated. */
  path: string;
  size: number;
  sha256: string;
}

export interface BackupManifest {
  format: typeof FORMAT;
  version: 1;
  name: string;
  createdAt: string;
  amiStreams: string;
  node: string;
  serverName: string;
  database: {
    backend: "sqlite" | "postgres";
    /** The dump's path in the backup. */
    file: string;
    /** PostgreSQL: the schema dumped. */
    schema?: string;
    schemaVersion: number;
    events: number;
    /** What made the dump (`node:sqlite backup, SQLite 3.x`, `pg_dump (PostgreSQL) 15.x`). */
    tool: string;
  };
  cas: { objects: number; bytes: number; missing: string[] };
  /** Matrix media files from before the content-addressed store. */
  legacyMedia: number;
  keys: string[];
  /** The config file, if one was in effect (`config/config.yaml`). */
  config: string | null;
  durationMs: number;
  files: BackupFile[];
}

/** Every regular file under `root`, relative and sorted (the manifest itself left out). */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const rel = relative(root, join(e.parentPath, e.name)).split(sep).join("/");
    if (rel !== MANIFEST) out.push(rel);
  }
  return out.sort();
}

const BLOCK = 1024 * 1024;

/** SHA-256 and size of a file; `sync`: fsync it too (files the backup just wrote without fsync). */
export async function hashFile(path: string, sync = false): Promise<{ size: number; sha256: string }> {
  const fh = await open(path, "r");
  try {
    const h = createHash("sha256");
    const buf = Buffer.allocUnsafe(BLOCK);
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, BLOCK, size);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
    if (sync) await fh.sync();
    return { size, sha256: h.digest("hex") };
  } finally {
    await fh.close();
  }
}

export async function writeManifest(dir: string, m: BackupManifest): Promise<void> {
  await writeFile(join(dir, MANIFEST), `${JSON.stringify(m, null, 1)}\n`, { mode: 0o600 });
  const fh = await open(join(dir, MANIFEST), "r");
  await fh.sync().finally(() => fh.close());
}

export async function readManifest(dir: string): Promise<BackupManifest> {
  let raw: string;
  try {
    raw = await readFile(join(dir, MANIFEST), "utf8");
  } catch {
    throw new AmiError("AMI_BACKUP_CORRUPT", `${dir}: no ${MANIFEST}: not a backup, or an incomplete one`);
  }
  let m: BackupManifest;
  try {
    m = JSON.parse(raw);
  } catch (e) {
    throw new AmiError("AMI_BACKUP_CORRUPT", `${dir}/${MANIFEST} is not valid JSON: ${(e as Error).message}`);
  }
  if (m?.format !== FORMAT || m.version !== 1 || !Array.isArray(m.files) || !m.database?.file)
    throw new AmiError("AMI_BACKUP_CORRUPT", `${dir}/${MANIFEST} is not an ami-streams backup manifest (version 1)`);
  return m;
}
