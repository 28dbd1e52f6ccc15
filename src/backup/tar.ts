/** A backup as one `.tar` (GNU tar, present on every Debian): packed after the manifest, unpacked to be read. */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { AmiError } from "../core/errors.ts";

function tar(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn("tar", args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    p.once("error", (e) => reject(new AmiError("AMI_UNAVAILABLE", `tar: ${e.message}`)));
    p.once("close", (code) =>
      code === 0 ? resolve() : reject(new AmiError("AMI_BACKUP_CORRUPT", `tar ${args[0]} failed: ${err.trim()}`)),
    );
  });
}

/** `dir` (the finished backup) as the file `out`; written as a temp file, then renamed. */
export async function packTar(dir: string, out: string): Promise<void> {
  const tmp = `${out}.partial`;
  await tar(["-c", "-f", tmp, "-C", dir, "."]);
  await rename(tmp, out);
}

/** Unpack a `.tar` backup into a temp dir beside it; returns the backup directory and a cleanup function. */
export async function unpackTar(file: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const tmp = await mkdtemp(join(dirname(file), ".unpack-"));
  const cleanup = () => rm(tmp, { recursive: true, force: true });
  try {
    await tar(["-x", "-f", file, "-C", tmp, "--no-same-owner"]);
    return { dir: tmp, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** A backup path as a directory to read: a `.tar` is unpacked first. */
export async function openBackup(path: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  if (!existsSync(path)) throw new AmiError("M_NOT_FOUND", `no backup at ${path}`);
  if (path.endsWith(".tar")) return unpackTar(path);
  return { dir: path, cleanup: async () => {} };
}
