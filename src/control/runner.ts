/**
 * One supervised service: spawns `node bin/ami-streams.ts serve <name>`, health-checks it over HTTP,
 * restarts it with exponential backoff when it dies (or stays unhealthy), stops it SIGTERM-then-SIGKILL.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/logger.ts";
import type { RuntimePaths } from "../core/paths.ts";
import type { ServiceDef } from "../core/service.ts";
import { binEntry } from "./bin-path.ts";
import { isOurProcess, readPid, removeFile, writePid } from "./proc.ts";
import type { ServiceState, ServiceStatus } from "./state.ts";

/** Consecutive failed health checks of a running service before it is killed and restarted. */
const UNHEALTHY_LIMIT = 3;

export class ServiceRunner {
  state: ServiceState = "stopped";
  restarts = 0;
  lastExit: string | null = null;
  #child: ChildProcess | undefined;
  #startedAt = 0;
  #healthySince = 0;
  #fails = 0;
  #attempt = 0;
  #wantUp = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #healthTimer: NodeJS.Timeout | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly #def: ServiceDef;
  readonly #config: Config;
  readonly #configPath: string | undefined;
  readonly #paths: RuntimePaths;
  readonly #log: Logger;

  constructor(def: ServiceDef, config: Config, configPath: string | undefined, paths: RuntimePaths, log: Logger) {
    this.#def = def;
    this.#config = config;
    this.#configPath = configPath;
    this.#paths = paths;
    this.#log = log.child({ service: def.name });
  }

  get name(): string {
    return this.#def.name;
  }
  get url(): string {
    return this.#def.baseUrl(this.#config);
  }
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  status(): ServiceStatus {
    const pid = this.#child?.pid ?? null;
    return {
      name: this.name,
      state: this.state,
      pid,
      uptimeS: pid ? Math.round((Date.now() - this.#startedAt) / 100) / 10 : null,
      restarts: this.restarts,
      url: this.url,
      enabled: this.#def.enabled(this.#config),
      lastExit: this.lastExit,
    };
  }

  /** Returns false when it was already up (a no-op). */
  async start(): Promise<boolean> {
    if (this.#wantUp) return false;
    this.#wantUp = true;
    this.#attempt = 0;
    await this.#reapOrphan();
    this.#spawn();
    this.#healthTimer ??= setInterval(() => void this.#check(), this.#config.control.healthIntervalMs);
    return true;
  }

  /** Returns false when it was already stopped (a no-op). */
  async stop(): Promise<boolean> {
    const wasUp = this.#wantUp || this.#child !== undefined;
    this.#wantUp = false;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#healthTimer);
    this.#healthTimer = undefined;
    const child = this.#child;
    if (child) {
      this.state = "stopping";
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), this.#config.control.stopGraceMs);
      await this.#exited;
      clearTimeout(killer);
    }
    this.state = "stopped";
    return wasUp;
  }

  /** A previous supervisor that died hard leaves its service running: stop that orphan; ignore reused pids. */
  async #reapOrphan(): Promise<void> {
    const file = this.#paths.pidFile(this.name);
    const pid = readPid(file);
    if (pid !== undefined && isOurProcess(pid, ["serve", this.name])) {
      this.#log.warn("stopping orphaned service process from an earlier supervisor", { pid });
      process.kill(pid, "SIGTERM");
      const deadline = Date.now() + this.#config.control.stopGraceMs;
      while (isOurProcess(pid, ["serve", this.name]) && Date.now() < deadline) await sleep(50);
      if (isOurProcess(pid, ["serve", this.name])) process.kill(pid, "SIGKILL");
      while (isOurProcess(pid, ["serve", this.name])) await sleep(20);
    }
    removeFile(file);
  }

  #spawn(): void {
    if (!this.#wantUp) return;
    // A 1 MB young generation keeps an idle service small; its throughput cost is negligible here.
    const args = ["--max-semi-space-size=1", binEntry, "serve", this.name];
    if (this.#configPath) args.push("--config", this.#configPath);
    const fd = openSync(this.#paths.logFile(this.name), "a");
    // glibc keeps freed large buffers (scrypt's 16 MiB per password hash) in per-thread pools for good;
    // a 128 KiB mmap threshold gives them back to the OS (~70 MB less resident after logins).
    const env = { MALLOC_MMAP_THRESHOLD_: "131072", ...process.env };
    const child = spawn(process.execPath, args, { stdio: ["ignore", fd, fd], env });
    closeSync(fd);
    this.#child = child;
    this.#startedAt = Date.now();
    this.#fails = 0;
    this.state = "starting";
    if (child.pid) writePid(this.#paths.pidFile(this.name), child.pid);
    this.#log.info("service process started", { pid: child.pid });
    this.#exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.#onExit(child, code, signal);
        resolve();
      });
    });
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    removeFile(this.#paths.pidFile(this.name));
    this.lastExit = signal ? `signal ${signal}` : `exit code ${code}`;
    if (!this.#wantUp) {
      this.state = "stopped";
      return;
    }
    const { initialMs, maxMs } = this.#config.control.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** this.#attempt);
    this.#attempt++;
    this.restarts++;
    this.state = "backoff";
    this.#log.warn("service process exited; restarting", { lastExit: this.lastExit, delayMs: delay });
    this.#retryTimer = setTimeout(() => this.#spawn(), delay);
  }

  async #check(): Promise<void> {
    const child = this.#child;
    if (!child || this.state === "stopping") return;
    const ok = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.ok)
      .catch(() => false);
    if (this.#child !== child) return;
    const now = Date.now();
    const { backoff, startTimeoutMs } = this.#config.control;
    if (ok) {
      if (this.state !== "running") this.#healthySince = now;
      this.state = "running";
      this.#fails = 0;
      // A long healthy stretch means the last crash is history: the next one restarts quickly again.
      if (this.#attempt > 0 && now - this.#healthySince >= backoff.resetAfterMs) this.#attempt = 0;
      return;
    }
    if (this.state === "starting") {
      if (now - this.#startedAt > startTimeoutMs) {
        this.#log.error("service did not become healthy in time; killing it", { startTimeoutMs });
        child.kill("SIGKILL");
      }
      return;
    }
    this.#fails++;
    this.state = "unhealthy";
    if (this.#fails >= UNHEALTHY_LIMIT) {
      this.#log.error("service failed health checks; killing it", { fails: this.#fails });
      child.kill("SIGKILL");
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
