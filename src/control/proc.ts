/** Process facts from /proc: is a pid alive, is it really ours (pids get reused), and its CPU/RSS. */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";

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

/** True when `pid` is alive and its argv contains every marker in order (e.g. ["serve", "matrix"]). */
export function isOurProcess(pid: number, markers: string[]): boolean {
  if (!pidAlive(pid)) return false;
  const argv = cmdline(pid);
  if (!argv?.some((a) => a.includes("ami-streams"))) return false;
  let i = 0;
  for (const a of argv) if (a === markers[i]) i++;
  return i === markers.length;
}

export function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const n = Number.parseInt(readFileSync(file, "utf8").trim(), 10);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export function writePid(file: string, pid: number): void {
  writeFileSync(file, `${pid}\n`);
}

export function removeFile(file: string): void {
  rmSync(file, { force: true });
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
