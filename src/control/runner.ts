/**
 * One supervised unit (our `ami-streams serve <name>`, or an external program): spawns it, health-checks it,
 * restarts it with capped exponential backoff when it dies (or stays unhealthy) as its restart policy allows,
 * stops it with its stop signal, then SIGKILL. Its stdout/stderr come through a pipe into a LogSink (scrubbed; a
 * full disk drops lines, never the process). Nothing here throws on a failed pid-file write: the pid file is
 * retried, and /proc finds the process anyway.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { type Config, loadConfig } from "../config.ts";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { RuntimePaths } from "../core/paths.ts";
import { Backoff } from "./backoff.ts";
import { LogSink } from "./log-sink.ts";
import { killAndWait, readPid, removeFile, writePid } from "./proc.ts";
import type { ServiceState, ServiceStatus } from "./state.ts";
import type { Unit } from "./units.ts";

/** Consecutive failed health checks of a running service before it is killed and restarted. */
const UNHEALTHY_LIMIT = 3;
/**
 * A program without a health check counts as running once it has lived this long (supervisord's startsecs), so one
 * that exits at once (bad flags, missing file) fails its start instead of flashing "running".
 */
const ALIVE_MS = 1000;

export class ServiceRunner {
  state: ServiceState = "stopped";
  restarts = 0;
  lastExit: string | null = null;
  /** Why the current start is failing (readiness time passed, or the restart policy gave up); null once healthy. */
  failure: string | null = null;
  /** `<name> start --workers N` (a service with withWorkers): passed to `serve` until set again. */
  workers: number | null = null;
  #child: ChildProcess | undefined;
  #startedAt = 0;
  /** When start() was asked for: readiness counts from here across crash restarts. */
  #requestedAt = 0;
  #healthySinceStart = false;
  #fails = 0;
  #wantUp = false;
  #checking = false;
  /** The pid file could not be written: retried at each health check. */
  #pidPending = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #healthTimer: NodeJS.Timeout | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly #unit: Unit;
  #config: Config;
  readonly #configPath: string | undefined;
  readonly #paths: RuntimePaths;
  readonly #log: Logger;
  readonly #backoff = new Backoff(() => this.#config.control.backoff);
  readonly #sink: LogSink;

  constructor(unit: Unit, config: Config, configPath: string | undefined, paths: RuntimePaths, log: Logger) {
    this.#unit = unit;
    this.#config = config;
    this.#configPath = configPath;
    this.#paths = paths;
    this.#log = log.child({ service: unit.name });
    this.#sink = new LogSink(paths.logFile(unit.name), (m) =>
      this.#log.warn("service log capture failing", { error: m }),
    );
  }

  get name(): string {
    return this.#unit.name;
  }
  get url(): string {
    return this.#unit.url(this.#config);
  }
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  status(): ServiceStatus {
    const pid = this.#child?.pid ?? null;
    return {
      name: this.name,
      kind: this.#unit.kind,
      state: this.state,
      pid,
      uptimeS: pid ? Math.round((Date.now() - this.#startedAt) / 100) / 10 : null,
      restarts: this.restarts,
      url: this.url,
      enabled: this.#unit.enabled(this.#config),
      lastExit: this.lastExit,
      failure: this.failure,
      statsUrl: this.#unit.statsUrl(this.#config),
    };
  }

  /** It can run as several processes (`start --workers N`). */
  get scalable(): boolean {
    return this.#unit.withWorkers !== undefined;
  }

  /** Returns false when it was already up (a no-op). Re-reads the config first (see #reloadConfig). */
  async start(): Promise<boolean> {
    if (this.#wantUp) return false;
    this.#reloadConfig();
    this.#wantUp = true;
    this.#backoff.reset();
    this.failure = null;
    this.#requestedAt = Date.now();
    this.#healthySinceStart = false;
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
      const grace = this.#unit.stopGraceMs(this.#config);
      const deadline = Date.now() + grace;
      this.#signal(child, this.#unit.stopSignal(this.#config));
      const killer = setTimeout(() => this.#signal(child, "SIGKILL"), grace);
      await this.#exited;
      clearTimeout(killer);
      if (this.#unit.kind === "program" && child.pid) await reapGroup(child.pid, deadline);
    }
    if (this.state !== "failed" || wasUp) this.state = "stopped";
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
    if (this.#unit.url(next) !== this.url)
      this.#log.info("config changed the service's address", { url: this.#unit.url(next) });
    this.#config = next;
  }

  /**
   * A previous supervisor that died hard leaves its service running: stop that orphan. Found by its pid file or,
   * when that could not be written, in /proc (argv or program marker, and runtime home); reused pids are ignored.
   */
  async #reapOrphan(): Promise<void> {
    const file = this.#paths.pidFile(this.name);
    const home = this.#paths.home;
    const pids = new Set(this.#unit.find(home));
    const fromFile = readPid(file);
    if (fromFile !== undefined && this.#unit.owns(fromFile, home)) pids.add(fromFile);
    await Promise.all(
      [...pids].map(async (pid) => {
        this.#log.warn("stopping orphaned service process from an earlier supervisor", { pid });
        const ours = (p: number) => this.#unit.owns(p, home);
        await killAndWait(pid, ours, this.#unit.stopGraceMs(this.#config), this.#unit.stopSignal(this.#config));
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
    const l = this.#unit.launch(this.#config, this.#configPath, this.#paths.home);
    const args =
      this.workers !== null && this.#unit.withWorkers ? [...l.args, "--workers", String(this.workers)] : l.args;
    const child = spawn(l.file, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: l.env,
      cwd: l.cwd,
      detached: l.group,
    });
    if (child.stdout) this.#sink.attach(child.stdout);
    if (child.stderr) this.#sink.attach(child.stderr);
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
      // A spawn that fails outright (ENOENT, EACCES: no pid) may never emit 'exit': the same path restarts it.
      child.on("error", (e) => {
        this.#log.error("cannot start service process", { error: e.message });
        if (child.pid === undefined) {
          // Said at once (`up` fails now, not after the readiness time); restarts go on as the policy says.
          this.failure = `cannot start ${l.file}: ${(e as NodeJS.ErrnoException).code ?? e.message}`;
          this.#onExit(child, null, null, this.failure);
          resolve();
        }
      });
    });
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, why?: string): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    removeFile(this.#paths.pidFile(this.name));
    this.lastExit = why ?? (signal ? `signal ${signal}` : `exit code ${code}`);
    // A program that died unasked leaves what it started behind in its group (holding its port, say): end those
    // as systemd ends a unit's cgroup, so the restart starts clean.
    if (this.#wantUp && this.#unit.kind === "program" && child.pid) {
      const pgid = child.pid;
      try {
        process.kill(-pgid, this.#unit.stopSignal(this.#config));
      } catch {}
      void reapGroup(pgid, Date.now() + this.#unit.stopGraceMs(this.#config));
    }
    if (!this.#wantUp) {
      this.state = "stopped";
      return;
    }
    const clean = code === 0 && !why;
    const policy = this.#unit.restart(this.#config);
    if (policy === "never" || (policy === "on-failure" && clean)) {
      // The policy leaves it down: say so, so `up` and `status` need not wait for a start that will not come.
      this.#wantUp = false;
      clearInterval(this.#healthTimer);
      this.#healthTimer = undefined;
      this.state = clean ? "stopped" : "failed";
      if (!clean || !this.#healthySinceStart)
        this.failure = `${this.failure ?? `exited (${this.lastExit})`}; restart policy: ${policy}`;
      this.#log.warn("service process exited; not restarting", { lastExit: this.lastExit, restart: policy });
      return;
    }
    this.#notReadyYet(Date.now());
    const delay = this.#backoff.next();
    this.restarts++;
    this.state = "backoff";
    this.#log.warn("service process exited; restarting", { lastExit: this.lastExit, delayMs: delay });
    this.#retryTimer = setTimeout(() => this.#spawn(), delay);
  }

  /** Never healthy since start() and its readiness time is over: record why (crash loops included). */
  #notReadyYet(now: number): void {
    const limit = this.#unit.readyTimeoutMs(this.#config);
    if (this.#healthySinceStart || this.failure || now - this.#requestedAt <= limit) return;
    this.failure = `not healthy within ${limit / 1000} s of start${this.lastExit ? ` (last: ${this.lastExit})` : ""}`;
  }

  #signal(child: ChildProcess, sig: NodeJS.Signals): void {
    // A program runs in its own process group: the signal reaches what it started too (a shell's children).
    if (this.#unit.kind === "program" && child.pid) {
      try {
        process.kill(-child.pid, sig);
        return;
      } catch {}
    }
    child.kill(sig);
  }

  async #check(): Promise<void> {
    const child = this.#child;
    if (!this.#child) this.#notReadyYet(Date.now());
    if (!child || this.state === "stopping" || this.#checking) return;
    this.#checking = true;
    let ok: boolean;
    try {
      ok =
        (await this.#unit.probe(this.#config, this.#configPath, this.#paths.home)) ??
        (child.exitCode === null && Date.now() - this.#startedAt >= ALIVE_MS);
    } finally {
      this.#checking = false;
    }
    // stop() may have begun while the probe ran (TS cannot see that across the await).
    if (this.#child !== child || (this.state as ServiceState) === "stopping") return;
    if (this.#pidPending) this.#writePidFile();
    const now = Date.now();
    if (ok) {
      this.state = "running";
      this.#fails = 0;
      this.failure = null;
      this.#healthySinceStart = true;
      // Healthy again: the last crash is history, the next one restarts quickly (see Backoff).
      this.#backoff.healthy(now);
      return;
    }
    this.#backoff.unhealthy();
    if (this.state === "starting") {
      const limit = this.#unit.readyTimeoutMs(this.#config);
      if (now - this.#startedAt > limit) {
        this.#log.error("service did not become healthy in time; killing it", { readyTimeoutMs: limit });
        this.failure = `not healthy within ${limit / 1000} s of start`;
        this.#signal(child, "SIGKILL");
      }
      return;
    }
    this.#fails++;
    this.state = "unhealthy";
    if (this.#fails >= UNHEALTHY_LIMIT) {
      this.#log.error("service failed health checks; killing it", { fails: this.#fails });
      this.#signal(child, "SIGKILL");
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a program started and left in its process group gets until `deadline` to exit, then SIGKILL. */
async function reapGroup(pgid: number, deadline: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  };
  while (alive() && Date.now() < deadline) await sleep(50);
  if (!alive()) return;
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {}
}
