/**
 * The foreground service runner behind `ami-streams serve <name>` (what the supervisor spawns). The bin entry
 * calls serveMain directly, without building the op registry, so service processes stay lean.
 */

import type { Config } from "../config.ts";
import { homeFor, loadConfig } from "../config.ts";
import { AmiError, isAmiError } from "../core/errors.ts";
import { installProcessGuards } from "../core/http/process-guards.ts";
import { createLogger, guardStderr, type Logger } from "../core/logger.ts";
import { runtimePaths } from "../core/paths.ts";
import { services } from "./services.ts";

/** Start the service, wait for SIGTERM/SIGINT (or `signal`), close it. */
export async function serveService(
  name: string,
  config: Config,
  log: Logger,
  signal?: AbortSignal,
  configPath?: string,
  instance?: string,
): Promise<string> {
  const def = services.find((s) => s.name === name);
  if (!def)
    throw new AmiError(
      "AMI_INVALID_INPUT",
      `unknown service '${name}' (known: ${services.map((s) => s.name).join(", ")})`,
    );
  if (instance !== undefined && !def.instances)
    throw new AmiError("AMI_INVALID_INPUT", `service '${name}' has no instances (no --instance)`);
  const slog = log.child({ service: instance === undefined ? name : `${name}-${instance}` });
  // What escaped every per-request boundary is logged and the service keeps serving (one bad request must not
  // take it down); a burst of them means broken state, and the process exits for the supervisor to restart.
  installProcessGuards(slog);
  // stdout/stderr are the supervisor's pipes: EPIPE when the supervisor is gone must not end the service.
  guardStderr();
  process.stdout.on("error", () => {});
  const handle = await def.start(config, { paths: runtimePaths(homeFor(config)), log: slog, configPath, instance });
  slog.info("service ready", { url: handle.url, pid: process.pid });
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
    signal?.addEventListener("abort", () => resolve(), { once: true });
  });
  slog.info("service stopping");
  await handle.close();
  return handle.url;
}

/** argv: `<name> [--instance ID] [--config FILE] [--workers N]`. Returns the exit code. */
export async function serveMain(argv: string[]): Promise<number> {
  const name = argv[0];
  const i = argv.indexOf("--config");
  try {
    if (!name || name.startsWith("-"))
      throw new AmiError("AMI_INVALID_INPUT", "usage: ami-streams serve <service> [--config FILE]");
    let { config, path } = loadConfig(i >= 0 ? argv[i + 1] : undefined);
    const w = argv.indexOf("--workers");
    if (w >= 0) {
      const def = services.find((s) => s.name === name);
      const n = Number(argv[w + 1]);
      if (!def?.withWorkers) throw new AmiError("AMI_INVALID_INPUT", `${name} runs as one process: no --workers`);
      if (!Number.isInteger(n) || n < 1) throw new AmiError("AMI_INVALID_INPUT", "--workers must be an integer >= 1");
      config = def.withWorkers(config, n);
    }
    const inst = argv.indexOf("--instance");
    const instance = inst >= 0 ? argv[inst + 1] : undefined;
    if (inst >= 0 && !instance) throw new AmiError("AMI_INVALID_INPUT", "--instance needs an id");
    await serveService(name, config, createLogger({ level: config.log.level }), undefined, path, instance);
    return 0;
  } catch (e) {
    process.stderr.write(`error: ${isAmiError(e) ? e.message : ((e as Error)?.stack ?? String(e))}\n`);
    return isAmiError(e) && e.code === "AMI_INVALID_INPUT" ? 2 : 1;
  }
}
