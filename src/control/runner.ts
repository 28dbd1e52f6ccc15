/**
 * One supervised service: spawns `node bin/ami-streams.ts serve <name>`, health-checks it over HTTP,
 * restarts it with capped exponential backoff when it dies (or stays unhealthy), stops it SIGTERM-then-SIGKILL.
 * Its stdout/stderr come through a pipe into a LogSink (scrubbed; a full disk drops lines, never the service).
 * Nothing here throws on a failed pid-file write: the pid file is retried, and /proc finds the process anyway.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { type Config, loadConfig } from "../core/config.ts";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { RuntimePaths } from "../core/paths.ts";
import type { ServiceDef } from "../core/service.ts";
import { Backoff } from "./backoff.ts";
import { binEntry } from "./bin-path.ts";
import { LogSink } from "./log-sink.ts";
import {
  HOME_ENV,
  hasMarkers,
  homeProcesses,
  isOurProcess,
  killAndWait,
  readPid,
  removeFile,
  writePid,
} from "./proc.ts";
import type { ServiceState, ServiceStatus } from "./state.ts";

/** Consecutive failed health checks of a running service before it is killed and restarted. */
const UNHEALTHY_LIMIT = 3;

export class ServiceRunner {
  state: ServiceState = "stopped";
  restarts = 0;
  lastExit: string | null = null;
  #child: ChildProcess | undefined;
  #startedAt = 0;
  #fails = 0;
  #wantUp = false;
  /** The pid file could not be written: retried at each health check. */
  #pidPending = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #healthTimer: NodeJS.Timeout | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly #def: ServiceDef;
  #config: Config;
  readonly #configPath: string | undefined;
  readonly #paths: RuntimePaths;
  readonly #log: Logger;
  readonly #backoff = new Backoff(() => this.#config.control.backoff);
  readonly #sink: LogSink;

  constructor(def: ServiceDef, config: Config, configPath: string | undefined, paths: RuntimePaths, log: Logger) {
    this.#def = def;
    this.#config = config;
    this.#configPath = configPath;
    this.#paths = paths;
    this.#log = log.child({ service: def.name });
    this.#sink = new LogSink(paths.logFile(def.name), (m) =>
      this.#log.warn("service log capture failing", { error: m }),
    );
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

  /** Returns false when it was already up (a no-op). Re-reads the config first (see #reloadConfig). */
  async start(): Promise<boolean> {
    if (this.#wantUp) return false;
    this.#reloadConfig();
    this.#wantUp = true;
    this.#backoff.reset();
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

  /** Stop and release the log file (supervisor shutdown). */
  async close(): Promise<void> {
    await this.stop();
    this.#sink.close();
  }

  /**
   * The service process reads the config file itself when it starts, so the supervisor must too: otherwise a
   * `restart` after an edit health-checks the old address for ever. A config that no longer loads is refused
   * here, plainly, rather than spawning a service that cannot start. (The runtime home is fixed for the
   * supervisor's life: every process it starts has it in AMI_STREAMS_HOME.)
   */
  #reloadConfig(): void {
    let next: Config;
    try {
      next = loadConfig(this.#configPath).config;
    } catch (e) {
      throw new AmiError(
        "AMI_INVALID_CONFIG",
        `${this.name} not started: the config no longer loads: ${(e as Error).message}`,
      );
    }
    if (this.#def.baseUrl(next) !== this.url)
      this.#log.info("config changed the service's address", { url: this.#def.baseUrl(next) });
    this.#config = next;
  }

  /**
   * A previous supervisor that died hard leaves its service running: stop that orphan. Found by its pid file or,
   * when that could not be written, in /proc by argv and runtime home; reused pids are ignored.
   */
  async #reapOrphan(): Promise<void> {
    const file = this.#paths.pidFile(this.name);
    const marks = ["serve", this.name];
    const pids = new Set(
      homeProcesses(this.#paths.home)
        .filter((p) => hasMarkers(p.argv, marks))
        .map((p) => p.pid),
    );
    const fromFile = readPid(file);
    if (fromFile !== undefined && isOurProcess(fromFile, marks)) pids.add(fromFile);
    await Promise.all(
      [...pids].map(async (pid) => {
        this.#log.warn("stopping orphaned service process from an earlier supervisor", { pid });
        await killAndWait(pid, marks, this.#config.control.stopGraceMs);
      }),
    );
    removeFile(file);
  }

  #spawn(): void {
    if (!this.#wantUp) return;
    if (this.restarts > 0 && this.state === "backoff") {
      // A crash restart: the new process reads the config file, so follow it; a broken edit keeps the old one.
      try {
        this.#reloadConfig();
      } catch (e) {
        this.#log.error("config no longer loads; the service cannot start until it is fixed", {
          error: (e as Error).message,
        });
      }
    }
    // A 1 MB young generation keeps an idle service small; its throughput cost is negligible here.
    const args = ["--max-semi-space-size=1", binEntry, "serve", this.name];
    if (this.#configPath) args.push("--config", this.#configPath);
    // glibc keeps freed large buffers (scrypt's 16 MiB per password hash) in per-thread pools for good;
    // a 128 KiB mmap threshold gives them back to the OS (~70 MB less resident after logins).
    // The runtime home in the environment lets `status`/`down` find the process in /proc without a pid file.
    const env = { MALLOC_MMAP_THRESHOLD_: "131072", ...process.env, [HOME_ENV]: this.#paths.home };
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env });
    if (child.stdout) this.#sink.attach(child.stdout);
    if (child.stderr) this.#sink.attach(child.stderr);
    // spawn failures (EAGAIN, ENOMEM) arrive as 'error' and then 'exit': the exit path restarts it.
    child.on("error", (e) => this.#log.error("cannot start service process", { error: e.message }));
    this.#child = child;
    this.#startedAt = Date.now();
    this.#fails = 0;
    this.state = "starting";
    this.#writePidFile();
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
    const delay = this.#backoff.next();
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
    if (this.#pidPending) this.#writePidFile();
    const now = Date.now();
    const { startTimeoutMs } = this.#config.control;
    if (ok) {
      this.state = "running";
      this.#fails = 0;
      // Healthy again: the last crash is history, the next one restarts quickly (see Backoff).
      this.#backoff.healthy(now);
      return;
    }
    this.#backoff.unhealthy();
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

  #writePidFile(): void {
    const pid = this.#child?.pid;
    if (!pid) return;
    const ok = writePid(this.#paths.pidFile(this.name), pid);
    if (!ok && !this.#pidPending) this.#log.warn("cannot write the pid file; retrying", { pid });
    this.#pidPending = !ok;
  }
}
