/** Process facts from /proc: is a pid alive, is it really ours (pids get reused), and its CPU/RSS. */
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** argv of a process, or undefined when it is gone (or a zombie with an empty cmdline). */
export function cmdline(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (!raw) return undefined;
    return raw.split("\0").filter(Boolean);
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and is `ami-streams <markers...>` (e.g. ["serve", "matrix"]). */
export function isOurProcess(pid: number, markers: string[]): boolean {
  if (!pidAlive(pid)) return false;
  const argv = cmdline(pid);
  if (!argv?.some((a) => a.includes("ami-streams"))) return false;
  return hasMarkers(argv, markers);
}

/** The pid in `file`; undefined when missing or unreadable (a pid file is a hint, /proc is the truth). */
export function readPid(file: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(file, "utf8").trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Write a pid file; false (never a throw) when the disk refuses: callers retry, and /proc still finds the process. */
export function writePid(file: string, pid: number): boolean {
  try {
    writeFileSync(file, `${pid}\n`, { mode: 0o600 });
    return true;
  } catch {
    removeFile(file); // a truncated pid file is worse than none
    return false;
  }
}

/** Remove a file; a failure (EIO) is ignored: a stale pid file is checked against /proc before use. */
export function removeFile(file: string): void {
  try {
    rmSync(file, { force: true });
  } catch {}
}

/** The environment variable every process the CLI starts carries, so it can be found per runtime home. */
export const HOME_ENV = "AMI_STREAMS_HOME";

/**
 * Our processes (argv names ami-streams) started for runtime home `home`, read from /proc: found even when their
 * pid files could not be written (a full disk) or are gone. Each comes with its argv.
 */
export function homeProcesses(home: string): Array<{ pid: number; argv: string[] }> {
  const want = `${HOME_ENV}=${home}`;
  const out: Array<{ pid: number; argv: string[] }> = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const argv = cmdline(pid);
    if (!argv?.some((a) => a.includes("ami-streams"))) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(want)) out.push({ pid, argv });
    } catch {}
  }
  return out;
}

/**
 * True when the command after the ami-streams entry script starts with `markers` (["serve", "matrix"]); strict
 * positions, so `ami-streams matrix room send --text serve` is no service.
 */
export function hasMarkers(argv: string[], markers: string[]): boolean {
  const i = argv.findIndex((a) => /ami-streams(\.mjs|\.ts)?$/.test(a));
  return i >= 0 && markers.every((m, k) => argv[i + 1 + k] === m);
}

export interface ProcSample {
  /** utime+stime in clock ticks. */
  cpuTicks: number;
  rssBytes: number;
  at: number;
}

const CLK_TCK = 100; // Linux USER_HZ is 100 on every mainstream architecture.

export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may contain spaces and parens: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpuTicks = Number(rest[11]) + Number(rest[12]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    return { cpuTicks, rssBytes: m ? Number(m[1]) * 1024 : 0, at: performance.now() };
  } catch {
    return undefined;
  }
}

/** CPU% between two samples of the same process (100 = one full core). */
export function cpuPercent(a: ProcSample, b: ProcSample): number {
  const wallS = (b.at - a.at) / 1000;
  if (wallS <= 0) return 0;
  return ((b.cpuTicks - a.cpuTicks) / CLK_TCK / wallS) * 100;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Send `signal` (default SIGTERM) to `pid`, SIGKILL it after `graceMs`; resolves once it is gone (or no longer
 * ours: reused). `marks` are argv markers of our own processes, or a predicate (external programs).
 */
export async function killAndWait(
  pid: number,
  marks: string[] | ((pid: number) => boolean),
  graceMs: number,
  first: NodeJS.Signals = "SIGTERM",
): Promise<void> {
  const ours = typeof marks === "function" ? marks : (p: number) => isOurProcess(p, marks);
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(pid, s);
    } catch {}
  };
  signal(first);
  const deadline = Date.now() + graceMs;
  while (ours(pid) && Date.now() < deadline) await sleep(50);
  if (ours(pid)) signal("SIGKILL");
  while (ours(pid)) await sleep(20);
}

/**
 * External programs carry this beside AMI_STREAMS_HOME: their argv is not ours to mark, so /proc finds them (and
 * the processes they start, which inherit it) by environment, and a reused pid never matches.
 */
export const PROGRAM_ENV = "AMI_STREAMS_PROGRAM";

function environ(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
  } catch {
    return undefined;
  }
}

function ppidOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}

/** True while `pid` lives, is no zombie, and carries program `name`'s markers for runtime home `home`. */
export function isProgramProcess(pid: number, home: string, name: string): boolean {
  if (!pidAlive(pid) || cmdline(pid) === undefined) return false;
  const env = environ(pid);
  return !!env?.includes(`${HOME_ENV}=${home}`) && env.includes(`${PROGRAM_ENV}=${name}`);
}

/**
 * Processes of external programs started for runtime home `home` (all programs, or only `name`), read from /proc.
 * `root` is false for a process whose parent belongs to the same program (a child it started).
 */
export function programProcesses(home: string, name?: string): Array<{ pid: number; name: string; root: boolean }> {
  const want = `${HOME_ENV}=${home}`;
  const found: Array<{ pid: number; name: string }> = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  for (const e of entries) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const env = environ(pid);
    if (!env?.includes(want) || cmdline(pid) === undefined) continue;
    const mark = env.find((v) => v.startsWith(`${PROGRAM_ENV}=`));
    if (!mark) continue;
    const n = mark.slice(PROGRAM_ENV.length + 1);
    if (name === undefined || n === name) found.push({ pid, name: n });
  }
  const byPid = new Map(found.map((f) => [f.pid, f.name]));
  return found.map((f) => ({ ...f, root: byPid.get(ppidOf(f.pid)) !== f.name }));
}
