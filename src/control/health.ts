/** One health probe of an external program: TCP connect, HTTP GET expecting 2xx, or a command exiting 0. */
import { spawn } from "node:child_process";
import { connect } from "node:net";
import type { HealthCheck } from "../core/program.ts";
import { PROGRAM_ENV } from "./proc.ts";

/** A probe that has not answered by then counts as a failure (the next one starts at the next interval). */
const PROBE_MS = 2000;
/** A health command gets longer: it is a process start, often a client program. */
const COMMAND_MS = 5000;

export function probe(check: HealthCheck, cwd: string): Promise<boolean> {
  if ("tcp" in check) return tcp(check.tcp);
  if ("http" in check)
    return fetch(check.http, { signal: AbortSignal.timeout(PROBE_MS), redirect: "manual" })
      .then(async (r) => {
        await r.body?.cancel();
        return r.status >= 200 && r.status < 300;
      })
      .catch(() => false);
  return command(check.command, cwd);
}

function tcp(target: string): Promise<boolean> {
  const i = target.lastIndexOf(":");
  const host = target.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(target.slice(i + 1));
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(PROBE_MS, () => done(false));
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}

function command(argv: string[], cwd: string): Promise<boolean> {
  // Not marked as the program: a probe still running must never be taken for (or killed as) the program.
  const env = { ...process.env };
  delete env[PROGRAM_ENV];
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd,
      env,
      stdio: "ignore",
      timeout: COMMAND_MS,
      killSignal: "SIGKILL",
    });
    child.once("error", () => resolve(false));
    child.once("exit", (code) => resolve(code === 0));
  });
}
