/**
 * `backup verify`: every file against the manifest (present, same size, same SHA-256; nothing unlisted), the
 * database dump readable (SQLite: `PRAGMA integrity_check` on the copy; PostgreSQL: `pg_restore` reads every block),
 * and, where a store file is damaged, the copied store's own check (which objects and chunks it hits).
 */
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { openStoreAt } from "../cas/open.ts";
import { AmiError } from "../core/errors.ts";
import { pgCheck } from "./database.ts";
import { type BackupManifest, hashFile, listFiles, readManifest } from "./files.ts";
import { sqliteCheckOffThread } from "./sqlite-check.ts";

export interface VerifyResult {
  ok: boolean;
  name: string;
  createdAt: string;
  database: string;
  files: number;
  bytes: number;
  events: number;
  casObjects: number;
  problems: string[];
}

export async function verifyDir(
  dir: string,
  progress: (done: number, total: number | undefined, message?: string) => void = () => {},
): Promise<{ result: VerifyResult; manifest: BackupManifest }> {
  const m = await readManifest(dir);
  const problems: string[] = [];
  const listed = new Set(m.files.map((f) => f.path));
  let bytes = 0;
  for (const [i, f] of m.files.entries()) {
    const p = join(dir, f.path);
    progress(i, m.files.length, "hashing");
    if (f.path.split("/").includes("..")) {
      problems.push(`${f.path}: path leaves the backup`);
      continue;
    }
    if (!existsSync(p)) {
      problems.push(`${f.path}: missing`);
      continue;
    }
    const size = (await stat(p)).size;
    if (size !== f.size) {
      problems.push(`${f.path}: ${size} bytes, the manifest says ${f.size} (truncated or grown)`);
      continue;
    }
    const h = await hashFile(p);
    if (h.sha256 !== f.sha256)
      problems.push(`${f.path}: SHA-256 ${h.sha256} does not match the manifest's ${f.sha256}`);
    bytes += size;
  }
  for (const f of await listFiles(dir)) if (!listed.has(f)) problems.push(`${f}: not in the manifest`);

  progress(m.files.length, m.files.length, "database");
  const db = join(dir, m.database.file);
  if (existsSync(db)) {
    try {
      if (m.database.backend === "sqlite") {
        // The full integrity_check, in a worker thread (see sqlite-check.ts); bracketed by progress calls as in create.
        progress(0, 1, "checking");
        const c = await sqliteCheckOffThread(db);
        progress(1, 1, "checking");
        if (c.events !== m.database.events)
          problems.push(`${m.database.file}: ${c.events} events, the manifest says ${m.database.events}`);
      } else await pgCheck(db);
    } catch (e) {
      problems.push(`${m.database.file}: ${(e as Error).message}`);
    }
  }

  // The store's own check (every manifest and chunk against its hash) names the damaged objects. When every store
  // file matches the manifest it would only hash the same bytes again: they are what create wrote from chunks it had
  // verified as it read them.
  const manifests = m.files.filter((f) => f.path.startsWith("cas/objects/")).length;
  if (manifests !== m.cas.objects)
    problems.push(`cas: ${manifests} object manifests, the manifest says ${m.cas.objects}`);
  const casDamaged = problems.some((p) => p.startsWith("cas/"));
  if (casDamaged && existsSync(join(dir, "cas", "objects"))) {
    const r = await openStoreAt(join(dir, "cas")).verify(undefined, (d, t) => progress(d, t, "objects"));
    for (const c of r.corrupt)
      problems.push(
        `cas: chunk ${c.chunk} ${c.problem === "missing" ? "is missing" : "does not match its hash"} (objects ${c.objects.map((o) => o.slice(0, 16)).join(", ")})`,
      );
    for (const o of r.corruptObjects) problems.push(`cas: object manifest ${o} is corrupt`);
    if (r.objectsChecked !== m.cas.objects)
      problems.push(`cas: ${r.objectsChecked} objects, the manifest says ${m.cas.objects}`);
  }
  return {
    manifest: m,
    result: {
      ok: problems.length === 0,
      name: m.name,
      createdAt: m.createdAt,
      database: m.database.backend,
      files: m.files.length,
      bytes,
      events: m.database.events,
      casObjects: m.cas.objects,
      problems,
    },
  };
}

/** Throws AMI_BACKUP_CORRUPT naming every problem (the CLI prints it and exits 1). */
export function assertIntact(r: VerifyResult, path: string): void {
  if (r.ok) return;
  const shown = r.problems.slice(0, 20);
  throw new AmiError(
    "AMI_BACKUP_CORRUPT",
    `backup ${path} is damaged (${r.problems.length} problem(s)):\n${shown.map((p) => `  ${p}`).join("\n")}${r.problems.length > shown.length ? `\n  ... and ${r.problems.length - shown.length} more` : ""}`,
    { problems: r.problems },
  );
}
