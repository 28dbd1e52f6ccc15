/**
 * A generated project: files with their modes, written into a directory that must not exist yet (or `--force`).
 * Secret-bearing files are 0600 and their directories 0700; the rest is readable (containers run as other users).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { AmiError } from "../core/errors.ts";

export interface ProjectFile {
  /** Relative to the project directory. */
  path: string;
  content: string;
  /** 0o600 for anything holding a secret. */
  mode: number;
}

export interface Project {
  files: ProjectFile[];
  /** Empty directories the containers write into (bind mounts), relative, each 0700. */
  dirs: string[];
}

/** A random secret: 32 bytes, URL- and YAML-safe (base64url, 43 characters). */
export const newSecret = (): string => randomBytes(32).toString("base64url");

/**
 * Who owns what the containers read and write. The files are written by the user running us; a container reading a
 * 0600 file must run as that user. Generated as root: a dedicated unprivileged id, and the files are handed to it.
 */
export function ownerIds(): { uid: number; gid: number; chown: boolean } {
  const uid = process.getuid?.() ?? 10001;
  const gid = process.getgid?.() ?? 10001;
  return uid === 0 ? { uid: 10001, gid: 10001, chown: true } : { uid, gid, chown: false };
}

/**
 * Refuses a non-empty existing directory unless `force`; `force` rewrites our files and leaves others be.
 * Modes are set explicitly (our umask is 0077): a directory holding a secret file, or one a container writes into,
 * is 0700; the others 0755 (containers read them as other users). Written as root for containers: handed to the
 * container user (ownerIds).
 */
export function writeProject(dir: string, project: Project, force: boolean, forContainers = true): string[] {
  const root = resolve(dir);
  if (existsSync(root) && !statSync(root).isDirectory())
    throw new AmiError("AMI_INVALID_INPUT", `${root} exists and is not a directory`);
  if (existsSync(root) && readdirSync(root).length > 0 && !force)
    throw new AmiError(
      "AMI_INVALID_INPUT",
      `${root} already exists and is not empty (use --force to overwrite the generated files: secrets change)`,
    );
  try {
    return writeInto(root, project, forContainers);
  } catch (e) {
    if (e instanceof AmiError) throw e;
    throw new AmiError("AMI_INVALID_INPUT", `cannot write ${root}: ${(e as Error).message}`);
  }
}

/** mkdir -p one level at a time (a recursive mkdirSync under /proc or a read-only mount can spin instead of failing). */
function makeDirs(p: string): void {
  if (existsSync(p)) return;
  makeDirs(dirname(p));
  mkdirSync(p);
}

function writeInto(root: string, project: Project, forContainers: boolean): string[] {
  const owner = ownerIds();
  const own = (p: string) => {
    if (forContainers && owner.chown) chownSync(p, owner.uid, owner.gid);
  };
  const modes = new Map<string, number>([["", 0o755]]);
  for (const f of project.files) {
    for (let d = dirname(f.path); d !== "."; d = dirname(d)) {
      const secret = f.mode === 0o600 && d === dirname(f.path);
      if (secret || !modes.has(d)) modes.set(d, secret ? 0o700 : (modes.get(d) ?? 0o755));
    }
  }
  for (const d of project.dirs) modes.set(d, 0o700);
  // Parents before children.
  for (const [d, mode] of [...modes].sort(([a], [b]) => a.length - b.length)) {
    const p = join(root, d);
    makeDirs(p);
    chmodSync(p, mode);
    own(p);
  }
  const written: string[] = [];
  for (const f of project.files) {
    const p = join(root, f.path);
    writeFileSync(p, f.content, { mode: f.mode });
    chmodSync(p, f.mode); // an existing file (--force) keeps its old mode through writeFileSync
    own(p);
    written.push(f.path);
  }
  return written;
}

export interface EngineCheck {
  /** A Docker engine answered `docker info`. */
  available: boolean;
  detail: string;
}

/** Is there a Docker engine to run the project on this machine? */
export function dockerEngine(): EngineCheck {
  const r = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8", timeout: 10_000 });
  if (r.error) return { available: false, detail: `no docker CLI (${(r.error as NodeJS.ErrnoException).code})` };
  if (r.status === 0 && r.stdout.trim()) return { available: true, detail: `Docker engine ${r.stdout.trim()}` };
  const why = `${r.stderr}${r.stdout}`
    .trim()
    .split("\n")
    .find((l) => /cannot connect|error|denied/i.test(l));
  return { available: false, detail: why ?? `docker info exited ${r.status}` };
}

export interface ComposeCheck {
  /** Which tool checked it: `docker compose` (v2), `docker-compose` (v1), or none found. */
  tool: string | null;
  ok: boolean;
  output: string;
}

/** `docker compose config -q` (or Debian's docker-compose 1.x) on the project: parses, interpolates, validates. */
export function composeConfig(dir: string): ComposeCheck {
  const tries: [string, string[]][] = [
    ["docker", ["compose", "config", "-q"]],
    ["docker-compose", ["config", "-q"]],
  ];
  for (const [bin, args] of tries) {
    const r = spawnSync(bin, args, { cwd: dir, encoding: "utf8", timeout: 60_000 });
    if (r.error) continue;
    // `docker compose` without the plugin: "unknown command" (exit 1) — try the next tool.
    if (bin === "docker" && /unknown (command|shorthand)|is not a docker command/i.test(`${r.stderr}${r.stdout}`))
      continue;
    const tool = `${bin} ${args.slice(0, -2).join(" ")}`.trim();
    return { tool, ok: r.status === 0, output: `${r.stderr}${r.stdout}`.trim() };
  }
  return { tool: null, ok: false, output: "neither `docker compose` nor `docker-compose` is installed here" };
}
