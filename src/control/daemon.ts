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
import { isOurProcess, pidAlive, readPid, removeFile } from "./proc.ts";
import { services } from "./services.ts";
import type { SupervisorStatus } from "./state.ts";

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
  if (readPid(pidFile) !== undefined && supervisorPid(ctx.paths) === undefined) {
    ctx.log.debug("removing stale supervisor pid file", { pidFile });
    removeFile(pidFile);
  }
  const args = [binEntry, "supervise", ...start.flatMap((s) => ["--start", s])];
  if (ctx.configPath) args.push("--config", ctx.configPath);
  const logFile = ctx.paths.logFile(SUPERVISOR);
  const fd = openSync(logFile, "a");
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", fd, fd], env: process.env });
  closeSync(fd);
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

/** Status from the running supervisor, or every known service as stopped when none runs. */
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
    services: services.map((s) => ({
      name: s.name,
      state: "stopped" as const,
      pid: null,
      uptimeS: null,
      restarts: 0,
      url: s.baseUrl(ctx.config),
      enabled: s.enabled(ctx.config),
      lastExit: null,
    })),
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

/** Ask the supervisor to stop everything and exit; SIGKILL it if it does not within the grace period. */
export async function stopSupervisor(ctx: OpContext): Promise<boolean> {
  const pid = supervisorPid(ctx.paths);
  if (pid === undefined) return false;
  const client = connectControl(ctx.config, ctx.paths);
  if (client) await client.request("POST", "/api/shutdown").catch(() => {});
  else process.kill(pid, "SIGTERM");
  const deadline = Date.now() + ctx.config.control.stopGraceMs + 5000;
  // isOurProcess, not pidAlive: a zombie (exited, not yet reaped by its parent) has an empty cmdline.
  while (isOurProcess(pid, ["supervise"]) && Date.now() < deadline) await sleep(50);
  if (isOurProcess(pid, ["supervise"])) process.kill(pid, "SIGKILL");
  removeFile(ctx.paths.pidFile(SUPERVISOR));
  return true;
}
