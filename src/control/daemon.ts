/** Client-side supervisor lifecycle: spawn it detached, wait for health, ask it to shut down. */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { AmiError } from "../core/errors.ts";
import type { OpContext } from "../core/ops.ts";
import { binEntry } from "./bin-path.ts";
import {
  type ControlClient,
  connectControl,
  readControlInfo,
  readControlToken,
  SUPERVISOR,
  supervisorPid,
} from "./client.ts";
import {
  HOME_ENV,
  hasMarkers,
  homeProcesses,
  isOurProcess,
  isProgramProcess,
  killAndWait,
  PROGRAM_ENV,
  pidAlive,
  programProcesses,
  readPid,
  removeFile,
} from "./proc.ts";
import type { SupervisorStatus } from "./state.ts";
import { units } from "./units.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function tail(file: string, n: number): string[] {
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, "utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.slice(-n);
}

/** The running supervisor, spawning it (starting `start`) when none runs. A stale pid file is ignored. */
export async function ensureSupervisor(
  ctx: OpContext,
  start: string[],
): Promise<{ client: ControlClient; spawned: boolean }> {
  const existing = connectControl(ctx.config, ctx.paths);
  if (existing) return { client: existing, spawned: false };
  const pidFile = ctx.paths.pidFile(SUPERVISOR);
  const running = supervisorPid(ctx.paths);
  if (running !== undefined) {
    // One that is still starting (another `up` spawned it) writes its files within moments.
    for (const until = Date.now() + 5000; Date.now() < until; ) {
      await sleep(100);
      const client = connectControl(ctx.config, ctx.paths);
      if (client) return { client, spawned: false };
    }
    // Alive but its run files are missing (it could not write them yet): a second one would fight over the port.
    throw new AmiError(
      "AMI_UNAVAILABLE",
      `a supervisor runs (pid ${running}) but cannot be reached: its files in ${ctx.paths.run} are missing (disk full?). ` +
        "It retries writing them; or run 'ami-streams down' and 'up' again.",
    );
  }
  if (readPid(pidFile) !== undefined) {
    ctx.log.debug("removing stale supervisor pid file", { pidFile });
    removeFile(pidFile);
  }
  const args = [binEntry, "supervise", ...start.flatMap((s) => ["--start", s])];
  if (ctx.configPath) args.push("--config", ctx.configPath);
  const logFile = ctx.paths.logFile(SUPERVISOR);
  let fd: number | "ignore" = "ignore";
  try {
    fd = openSync(logFile, "a", 0o600);
  } catch {}
  // The runtime home in its environment (inherited by the services) lets status/down find them all in /proc.
  // Not a program's marker, should this CLI run inside a supervised program: the supervisor is no part of it.
  const env: NodeJS.ProcessEnv = { ...process.env, [HOME_ENV]: ctx.paths.home };
  delete env[PROGRAM_ENV];
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", fd, fd], env });
  if (typeof fd === "number") closeSync(fd);
  child.unref();
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const client = connectControl(ctx.config, ctx.paths);
    if (client) return { client, spawned: true };
    if (child.pid && (!pidAlive(child.pid) || child.exitCode !== null)) break;
    await sleep(50);
  }
  const info = readControlInfo(ctx.paths);
  throw new AmiError(
    "AMI_UNAVAILABLE",
    `the supervisor did not start; last lines of ${logFile}:\n${tail(logFile, 15).join("\n")}`,
    {
      controlInfo: info ?? null,
      tokenPresent: readControlToken(ctx.config, ctx.paths) !== undefined,
    },
  );
}

/**
 * Status from the running supervisor; when none runs, every known service as stopped, except those whose process
 * still runs for this home (the supervisor died): orphaned, with their pid, so `down` is known to be needed.
 */
export async function currentStatus(ctx: OpContext): Promise<SupervisorStatus> {
  const client = connectControl(ctx.config, ctx.paths);
  if (client) {
    try {
      return await client.request<SupervisorStatus>("GET", "/api/status");
    } catch (e) {
      if ((e as AmiError).code !== "AMI_NOT_RUNNING") throw e;
    }
  }
  return {
    supervisor: { running: false, pid: null, url: null, uptimeS: null },
    services: units(ctx.config).map((s) => {
      const pid = s.find(ctx.paths.home)[0] ?? null;
      return {
        name: s.name,
        kind: s.kind,
        state: pid === null ? ("stopped" as const) : ("orphaned" as const),
        pid,
        uptimeS: null,
        restarts: 0,
        url: s.url(ctx.config),
        enabled: s.enabled(ctx.config),
        lastExit: null,
        failure: null,
        statsUrl: s.statsUrl(ctx.config),
      };
    }),
  };
}

/** Poll until every named service is healthy; fails with the log tail of the laggards on timeout. */
export async function waitHealthy(client: ControlClient, names: string[], ctx: OpContext): Promise<SupervisorStatus> {
  const deadline = Date.now() + ctx.config.control.startTimeoutMs;
  for (;;) {
    const st = await client.request<SupervisorStatus>("GET", "/api/status");
    const pending = st.services.filter((s) => names.includes(s.name) && s.state !== "running");
    ctx.progress(
      names.length - pending.length,
      names.length,
      pending.length ? `waiting for ${pending.map((s) => s.name).join(", ")}` : "healthy",
    );
    if (pending.length === 0) return st;
    // A failed readiness or a restart policy that gave up will not turn into "running" by waiting longer.
    const failed = pending.filter((s) => s.state === "failed" || s.failure);
    if (failed.length > 0) {
      const detail = failed
        .map((s) => `${s.name}: ${s.failure ?? s.state}\n  ${tail(ctx.paths.logFile(s.name), 10).join("\n  ")}`)
        .join("\n");
      throw new AmiError("AMI_UNAVAILABLE", `not started:\n${detail}`);
    }
    if (Date.now() > deadline || ctx.signal.aborted) {
      const detail = pending
        .map(
          (s) =>
            `${s.name}: ${s.state}${s.lastExit ? ` (last: ${s.lastExit})` : ""}\n  ${tail(ctx.paths.logFile(s.name), 10).join("\n  ")}`,
        )
        .join("\n");
      throw new AmiError("AMI_TIMEOUT", `not healthy after ${ctx.config.control.startTimeoutMs} ms:\n${detail}`);
    }
    await sleep(100);
  }
}

/**
 * Ask the supervisor to stop everything and exit (SIGKILL it if it does not within the grace period), then stop
 * every process of this runtime home still running: services orphaned by a supervisor that died, found in /proc.
 * False when nothing was running.
 */
export async function stopSupervisor(ctx: OpContext): Promise<boolean> {
  const pid = supervisorPid(ctx.paths);
  if (pid !== undefined) {
    const client = connectControl(ctx.config, ctx.paths);
    if (client) await client.request("POST", "/api/shutdown").catch(() => {});
    else signal(pid, "SIGTERM");
    const deadline = Date.now() + ctx.config.control.stopGraceMs + 5000;
    // isOurProcess, not pidAlive: a zombie (exited, not yet reaped by its parent) has an empty cmdline.
    while (isOurProcess(pid, ["supervise"]) && Date.now() < deadline) await sleep(50);
    if (isOurProcess(pid, ["supervise"])) signal(pid, "SIGKILL");
    removeFile(ctx.paths.pidFile(SUPERVISOR));
  }
  const left = homeProcesses(ctx.paths.home).filter(
    (p) => hasMarkers(p.argv, ["serve"]) || hasMarkers(p.argv, ["supervise"]),
  );
  await Promise.all(
    left.map(async (p) => {
      const marks = hasMarkers(p.argv, ["supervise"]) ? ["supervise"] : ["serve"];
      ctx.log.warn("stopping a leftover process of this runtime home", { pid: p.pid, argv: p.argv.slice(-4) });
      await killAndWait(p.pid, marks, ctx.config.control.stopGraceMs);
    }),
  );
  // External programs the supervisor could not stop (it died): found by their environment markers, each sent its
  // own stop signal when the config still names it.
  const progs = programProcesses(ctx.paths.home);
  const all = units(ctx.config);
  await Promise.all(
    progs.map(async (p) => {
      const u = all.find((x) => x.name === p.name);
      ctx.log.warn("stopping a leftover program of this runtime home", { pid: p.pid, program: p.name });
      const grace = u?.stopGraceMs(ctx.config) ?? ctx.config.control.stopGraceMs;
      const first = u?.stopSignal(ctx.config) ?? "SIGTERM";
      await killAndWait(p.pid, (x) => isProgramProcess(x, ctx.paths.home, p.name), grace, first);
    }),
  );
  for (const s of all) {
    const f = ctx.paths.pidFile(s.name);
    const p = readPid(f);
    if (p !== undefined && !s.owns(p, ctx.paths.home)) removeFile(f);
  }
  return pid !== undefined || left.length > 0 || progs.length > 0;
}

function signal(pid: number, s: NodeJS.Signals): void {
  try {
    process.kill(pid, s);
  } catch {}
}
