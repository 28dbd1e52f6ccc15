/**
 * Scheduled backups and retention. A backup is due when the newest scheduled one in the backup directory is older
 * than `backup.schedule` (so a restart neither skips nor repeats one); after a successful create, backups past
 * `backup.keep` are removed, oldest first. Only names `backup create` generates are ever removed: a backup an
 * operator named is theirs to delete.
 */
import { readdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";

const GENERATED = /^ami-backup-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z(\.tar)?$/;

export interface BackupEntry {
  name: string;
  path: string;
  createdTs: number;
  tar: boolean;
}

/** Generated backups in `dir`, newest first (none when the directory does not exist). */
export function listBackups(dir: string): BackupEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: BackupEntry[] = [];
  for (const n of names) {
    const m = GENERATED.exec(n);
    if (!m) continue;
    const ts = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]);
    out.push({ name: n.replace(/\.tar$/, ""), path: join(dir, n), createdTs: ts, tar: Boolean(m[8]) });
  }
  return out.sort((a, b) => b.createdTs - a.createdTs);
}

/** Milliseconds until the next backup is due (≤ 0: due now). */
export function dueIn(dir: string, intervalMs: number, now = Date.now()): number {
  const newest = listBackups(dir)[0];
  return newest ? newest.createdTs + intervalMs - now : 0;
}

/** Remove generated backups past the `keep` newest (0: keep all); returns the paths removed. */
export async function prune(dir: string, keep: number): Promise<string[]> {
  if (keep <= 0) return [];
  const old = listBackups(dir).slice(keep);
  for (const b of old) await rm(b.path, { recursive: true, force: true });
  return old.map((b) => b.path);
}
