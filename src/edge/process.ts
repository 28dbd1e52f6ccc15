/**
 * One function version's process: a workerd process claimed from the pool (pool.ts) and given the function's code,
 * watched by a watchdog that samples /proc every few ms. workerd (open source) enforces no CPU or memory limits, so
 * they are enforced here, from outside: past a request's CPU budget or the RSS limit the whole process group is
 * SIGKILLed (the requests in it fail with the limit's error) and a fresh process is claimed. One function per
 * process: a bad function takes down only itself. A function idle for edge.idleStopMs gives its process up; the next
 * request claims another one.
 */
import { LogSink } from "../control/log-sink.ts";
import { sampleProc } from "../control/proc.ts";
import type { Logger } from "../core/logger.ts";
import type { WorkerdPool } from "./pool.ts";
import type { LoadSpec, WorkerdProcess } from "./workerd.ts";

const CLK_MS = 10; // one clock tick (USER_HZ 100)

export type KillReason = "cpu" | "memory";

export interface ProcessOptions {
  name: string;
  version: number;
  spec: LoadSpec;
  pool: WorkerdPool;
  logFile: string;
  cpuMsPerRequest: number;
  memoryBytes: number;
  watchdogMs: number;
  log: Logger;
  /** Called when the watchdog killed the process (the function's metrics count it). */
  onKill(reason: KillReason): void;
  /** A process now serves (or no longer serves) this function: its KV token maps to the function while it does. */
  onAttach(proc: WorkerdProcess): void;
  onDetach(proc: WorkerdProcess): void;
}

/** A request in flight in this process: its CPU budget counts from the process's CPU when it started. */
export interface Flight {
  cpuAtStart: number;
  /** Rejects the request's proxy with the limit's reason when the watchdog kills the process. */
  abort(reason: KillReason): void;
}

export class FunctionProcess {
  readonly opts: ProcessOptions;
  #proc: WorkerdProcess | undefined;
  #ready: Promise<WorkerdProcess> | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly flights = new Set<Flight>();
  /** CPU ms of processes that ended (kills, restarts, idle stops) plus the current one's at the last sample. */
  #cpuDoneMs = 0;
  #lastCpuTicks = 0;
  rssBytes = 0;
  restarts = 0;
  lastUsed = Date.now();
  #closed = false;
  readonly #sink: LogSink;

  constructor(opts: ProcessOptions) {
    this.opts = opts;
    this.#sink = new LogSink(opts.logFile);
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  get running(): boolean {
    return !!this.#proc?.alive;
  }

  cpuMs(): number {
    return this.#cpuDoneMs + this.#lastCpuTicks * CLK_MS;
  }

  /** The process's CPU ticks now (0 when it is gone). */
  cpuTicksNow(): number {
    const pid = this.#proc?.pid;
    return (pid && sampleProc(pid)?.cpuTicks) || 0;
  }

  /** The serving process (claimed and loaded on first use); rejects with workerd's words when the module fails. */
  ready(): Promise<WorkerdProcess> {
    this.lastUsed = Date.now();
    if (this.#proc && !this.#proc.alive) this.#detach(this.#proc);
    this.#ready ??= this.#start().catch((e) => {
      this.#ready = undefined;
      throw e;
    });
    return this.#ready;
  }

  async #start(): Promise<WorkerdProcess> {
    if (this.#closed) throw new Error("function process closed");
    const proc = await this.opts.pool.claim();
    proc.sink = this.#sink;
    try {
      await proc.load(this.opts.spec);
    } catch (e) {
      await proc.close();
      throw e;
    }
    if (this.#closed) {
      await proc.close();
      throw new Error("function process closed");
    }
    this.#proc = proc;
    this.#lastCpuTicks = 0;
    this.opts.onAttach(proc);
    void proc.gone.then(() => {
      if (this.#proc === proc) this.#detach(proc);
    });
    this.#timer ??= setInterval(() => this.#watch(), this.opts.watchdogMs);
    return proc;
  }

  #detach(proc: WorkerdProcess): void {
    if (this.#proc !== proc) return;
    this.#cpuDoneMs += this.#lastCpuTicks * CLK_MS;
    this.#lastCpuTicks = 0;
    this.#proc = undefined;
    this.#ready = undefined;
    this.rssBytes = 0;
    this.opts.onDetach(proc);
    void proc.close();
  }

  #watch(): void {
    const pid = this.#proc?.pid;
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
    const proc = this.#proc;
    if (!proc) return;
    this.opts.log.warn("edge function over its limit: killing its workerd process", {
      function: this.opts.name,
      reason,
      rssBytes: this.rssBytes,
    });
    proc.kill();
    this.#detach(proc);
    for (const f of this.flights) f.abort(reason);
    this.flights.clear();
    this.opts.onKill(reason);
    this.restarts++;
    // Warm again for the next request (other requests already wait on ready()).
    if (!this.#closed) this.ready().catch(() => {});
  }

  /** Give the process up when idle (no request in flight): the next request claims a pooled one. */
  sleep(): void {
    if (this.#proc && this.flights.size === 0) this.#detach(this.#proc);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const proc = this.#proc;
    if (proc) {
      this.#detach(proc);
      await proc.close();
    }
    this.#sink.close();
  }
}
