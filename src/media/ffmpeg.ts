/** Running ffmpeg as the codec engine: a child with its stderr tail kept for error messages and a settled exit. */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";

export interface FfmpegRun {
  proc: ChildProcessWithoutNullStreams;
  /** Exit code (null: killed by a signal; -1: could not start). */
  exited: Promise<number | null>;
  /** The last lines ffmpeg wrote to stderr (its error messages). */
  stderr(): string;
  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  stop(graceMs?: number): void;
}

export const QUIET = ["-hide_banner", "-nostdin", "-loglevel", "error"];

/** `extraPipes`: more output pipes after stderr (fd 3, 4, ...: `pipe:3`), read from `proc.stdio[3...]`. */
export function runFfmpeg(ffmpegPath: string, args: string[], extraPipes = 0): FfmpegRun {
  const stdio = Array.from({ length: 3 + extraPipes }, () => "pipe" as const);
  const proc = spawn(ffmpegPath, args, { stdio }) as ChildProcessWithoutNullStreams;
  let tail = "";
  proc.stderr.on("data", (d: Buffer) => {
    tail = (tail + d.toString()).slice(-4000);
  });
  proc.stdin.on("error", () => {});
  proc.stdout.on("error", () => {});
  const exited = new Promise<number | null>((resolve) => {
    proc.once("error", (e) => {
      tail += `cannot run ${ffmpegPath}: ${e.message}`;
      resolve(-1);
    });
    proc.once("close", (code) => resolve(code));
  });
  return {
    proc,
    exited,
    stderr: () => tail.trim(),
    stop(graceMs = 2000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      setTimeout(() => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      }, graceMs).unref();
    },
  };
}

/** The last meaningful line of ffmpeg's stderr, for a status field. */
export const lastLine = (stderr: string): string =>
  stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1) ?? "";

/** Exponential backoff: initial, doubling up to max. */
export const backoffMs = (attempt: number, initialMs: number, maxMs: number): number =>
  Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
