/**
 * One function's workerd process: spawned in its own process group with the function's config, ready once its unix
 * socket accepts, watched by a watchdog that samples /proc every few ms. workerd (open source) enforces no CPU or
 * memory limits, so they are enforced here, from outside: past a request's CPU budget or the RSS limit the whole
 * process group is SIGKILLed (the requests in it fail with the limit's error) and a fresh process is started. One
 * process per function: a bad function takes down only itself.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { request } from "node:http";
import { LogSink } from "../control/log-sink.ts";
import { HOME_ENV, PROGRAM_ENV, sampleProc } from "../control/proc.ts";
import type { Logger } from "../core/logger.ts";

const CLK_MS = 10; // one clock tick (USER_HZ 100)

export type KillReason = "cpu" | "memory";

export interface ProcessOptions {
  name: string;
  workerd: string;
  configFile: string;
  socket: string;
  cwd: string;
  /** Sent as x-ami-edge-probe: our entry module answers it (once the user's module compiled) without running it. */
  probeToken: string;
  logFile: string;
  home: string;
  cpuMsPerRequest: number;
  memoryBytes: number;
  watchdogMs: number;
  log: Logger;
  /** Called when the watchdog killed the process (the function's metrics count it). */
  onKill(reason: KillReason): void;
}

/** A request in flight in this process: its CPU budget counts from the process's CPU when it started. */
export interface Flight {
  cpuAtStart: number;
  /** Rejects the request's proxy with the limit's reason when the watchdog kills the process. */
  abort(reason: KillReason): void;
}

export class FunctionProcess {
  readonly opts: ProcessOptions;
  #child: ChildProcess | undefined;
  #ready: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly flights = new Set<Flight>();
  /** CPU ms of processes that ended (kills, restarts) plus the current one's at the last sample. */
  #cpuDoneMs = 0;
  #lastCpuTicks = 0;
  rssBytes = 0;
  restarts = 0;
  #closed = false;
  readonly #sink: LogSink;
  /** Last lines of output (a start failure's reason: a module that does not parse). */
  #tail = "";

  constructor(opts: ProcessOptions) {
    this.opts = opts;
    this.#sink = new LogSink(opts.logFile);
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  cpuMs(): number {
    return this.#cpuDoneMs + this.#lastCpuTicks * CLK_MS;
  }

  /** The process's CPU ticks now (0 when it is gone). */
  cpuTicksNow(): number {
    const pid = this.#child?.pid;
    return (pid && sampleProc(pid)?.cpuTicks) || 0;
  }

  /** Start (or return the start in progress); rejects with workerd's own words when it exits before listening. */
  ready(): Promise<void> {
    this.#ready ??= this.#start().catch((e) => {
      this.#ready = undefined;
      throw e;
    });
    return this.#ready;
  }

  async #start(): Promise<void> {
    if (this.#closed) throw new Error("function process closed");
    const o = this.opts;
    this.#tail = "";
    rmSync(o.socket, { force: true }); // a killed process leaves its socket file, and bind() would fail
    const child = spawn(o.workerd, ["serve", o.configFile], {
      cwd: o.cwd,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", [HOME_ENV]: o.home, [PROGRAM_ENV]: `edge-${o.name}` },
    });
    this.#child = child;
    this.#lastCpuTicks = 0;
    for (const s of [child.stdout, child.stderr]) {
      if (!s) continue;
      this.#sink.attach(s);
      s.on("data", (c: Buffer | string) => {
        this.#tail = (this.#tail + c.toString()).slice(-4000);
      });
    }
    let exited: string | undefined;
    child.once("exit", (code, signal) => {
      exited = signal ? `signal ${signal}` : `exit code ${code}`;
      this.#onExit(child);
    });
    child.once("error", (e) => {
      exited = e.message;
    });
    this.#timer ??= setInterval(() => this.#watch(), o.watchdogMs);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (exited !== undefined) {
        await new Promise((r) => setTimeout(r, 20)); // the last output lines
        throw new StartError(`workerd exited (${exited}) before serving: ${this.#tail.trim() || "no output"}`);
      }
      if (await probe(o.socket, o.probeToken)) return;
      if (Date.now() > deadline) {
        this.#kill(child);
        throw new StartError(`workerd did not listen within 15 s: ${this.#tail.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  #onExit(child: ChildProcess): void {
    if (this.#child !== child) return;
    this.#cpuDoneMs += this.#lastCpuTicks * CLK_MS;
    this.#lastCpuTicks = 0;
    this.#child = undefined;
    this.#ready = undefined;
    try {
      process.kill(-(child.pid ?? 0), "SIGKILL"); // whatever it left in its group
    } catch {}
  }

  #watch(): void {
    const pid = this.#child?.pid;
    if (!pid) return;
    const s = sampleProc(pid);
    if (!s) return;
    this.#lastCpuTicks = s.cpuTicks;
    this.rssBytes = s.rssBytes;
    if (s.rssBytes > this.opts.memoryBytes) {
      this.#limit("memory");
      return;
    }
    if (this.flights.size === 0) return;
    // The process's CPU since its oldest request began, against that many requests' budgets: a loop in one request
    // uses a whole core and crosses it at once; concurrent honest requests share the budget they brought.
    let oldest = Number.POSITIVE_INFINITY;
    for (const f of this.flights) oldest = Math.min(oldest, f.cpuAtStart);
    const usedMs = (s.cpuTicks - oldest) * CLK_MS;
    if (usedMs > this.opts.cpuMsPerRequest * this.flights.size) this.#limit("cpu");
  }

  #limit(reason: KillReason): void {
    const child = this.#child;
    if (!child) return;
    this.opts.log.warn("edge function over its limit: killing its workerd process", {
      function: this.opts.name,
      reason,
      rssBytes: this.rssBytes,
    });
    this.#kill(child);
    this.#onExit(child);
    for (const f of this.flights) f.abort(reason);
    this.flights.clear();
    this.opts.onKill(reason);
    this.restarts++;
    // Warm again for the next request (other requests already wait on ready()).
    if (!this.#closed) this.ready().catch(() => {});
  }

  #kill(child: ChildProcess): void {
    try {
      process.kill(-(child.pid ?? 0), "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once("exit", r));
      this.#kill(child);
      await gone;
    }
    this.#sink.close();
  }
}

export class StartError extends Error {}

/** True once workerd answers our entry module's probe (so the user's module compiled and the socket is served). */
function probe(socketPath: string, token: string): Promise<boolean> {
  return new Promise((resolve) => {
    const r = request(
      { socketPath, path: "/", method: "GET", headers: { "x-ami-edge-probe": token }, agent: false },
      (res) => {
        res.resume();
        resolve(res.statusCode === 204);
      },
    );
    r.once("error", () => resolve(false));
    r.end();
  });
}
