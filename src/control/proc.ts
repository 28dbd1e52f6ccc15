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

/** SIGTERM `pid`, SIGKILL it after `graceMs`; resolves once it is gone (or no longer ours: reused). */
export async function killAndWait(pid: number, marks: string[], graceMs: number): Promise<void> {
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(pid, s);
    } catch {}
  };
  signal("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (isOurProcess(pid, marks) && Date.now() < deadline) await sleep(50);
  if (isOurProcess(pid, marks)) signal("SIGKILL");
  while (isOurProcess(pid, marks)) await sleep(20);
}
