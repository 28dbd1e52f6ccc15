/**
 * One function version's process: a workerd process claimed from the pool (pool.ts) and given the function's code,
 * watched by a watchdog that samples /proc every few ms. workerd (open source) enforces no CPU or memory limits, so
 * they are enforced here, from outside: past the CPU its invocations brought (a request's or a scheduled() run's
 * budget, its waitUntil work included: see #watchOne and ARCHITECTURE.md, "CPU limit") or the RSS limit the whole
 * process group is SIGKILLed (the invocations in it fail with the limit's error) and a fresh process is claimed. One function per
 * process: a bad function takes down only itself. A function idle for edge.idleStopMs gives its process up; the next
 * request claims another one.
 *
 * Promotion: a pooled process serves through its loader worker, one more isolate hop per request. Once the function
 * serves, a process dedicated to it (its modules in the config, no loader) is started in the background and takes
 * over at a moment with no request in flight; the first request never waits for it, later ones skip the hop.
 */
import { LogSink } from "../control/log-sink.ts";
import { sampleProc } from "../control/proc.ts";
import type { Logger } from "../core/logger.ts";
import type { WorkerdPool } from "./pool.ts";
import { type LineSink, type LoadSpec, START_CPU_MS, type StartLimits, type WorkerdProcess } from "./workerd.ts";

const CLK_MS = 10; // one clock tick (USER_HZ 100)
/**
 * CPU a serving process may use for nothing an invocation paid for (workerd's own housekeeping: a tick now and then):
 * refilled at this rate per wall second, held up to BURST. A loop needs more than 1 % of a core to be charged at all.
 */
export const HOUSEKEEPING_MS_PER_S = 10;
export const HOUSEKEEPING_BURST_MS = 50;
/** A process replaced by its function's dedicated one is closed this long after its last invocation ended. */
const DRAIN_GRACE_MS = 5000;

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
  /** Start a dedicated process after a pooled one began serving (off: stay on the pooled process). */
  promote: boolean;
  log: Logger;
  /** The function's secrets (name -> value): their values are replaced by `[secret NAME]` in its log lines. */
  secrets?: Record<string, string>;
  /** Called when the watchdog killed the process (the function's metrics count it). */
  onKill(reason: KillReason): void;
  /** A process now serves (or no longer serves) this function: its KV token maps to the function while it does. */
  onAttach(proc: WorkerdProcess): void;
  onDetach(proc: WorkerdProcess): void;
}

/** An invocation in flight (a request or a scheduled() run): its CPU budget counts from the process's CPU when it
 * started. */
export interface Flight {
  /** The process the request went to (the current one, or one being replaced that finishes what it has). */
  proc: WorkerdProcess;
  cpuAtStart: number;
  /** Rejects the request's proxy with the limit's reason when the watchdog kills the process. */
  abort(reason: KillReason): void;
}

export class FunctionProcess {
  readonly opts: ProcessOptions;
  #proc: WorkerdProcess | undefined;
  #ready: Promise<WorkerdProcess> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #promoteTimer: NodeJS.Timeout | undefined;
  readonly flights = new Set<Flight>();
  /** Replaced processes finishing their requests (still watched), then closed. */
  readonly #draining = new Set<WorkerdProcess>();
  /** CPU ms of processes that ended (kills, restarts, idle stops, promotions). */
  #cpuDoneMs = 0;
  rssBytes = 0;
  restarts = 0;
  lastUsed = Date.now();
  #closed = false;
  readonly #sink: LogSink;
  /** What the function's processes write their output lines to: the sink, with secret values masked. */
  readonly #out: LineSink;

  get #limits(): StartLimits {
    return { cpuMs: START_CPU_MS, memoryBytes: this.opts.memoryBytes };
  }

  constructor(opts: ProcessOptions) {
    this.opts = opts;
    this.#sink = new LogSink(opts.logFile);
    // A function that prints a secret (a debug line, an error echoing its config) must not put it in `edge tail` or
    // `edge logs`. Longest first, so a secret containing another is masked whole; very short values would garble
    // every line and are left.
    const masks = Object.entries(opts.secrets ?? {})
      .filter(([, v]) => v.length >= 6)
      .sort((a, b) => b[1].length - a[1].length);
    this.#out = {
      writeLines: (lines) =>
        this.#sink.writeLines(
          masks.length === 0
            ? lines
            : lines.map((l) => masks.reduce((t, [name, v]) => t.replaceAll(v, `[secret ${name}]`), l)),
        ),
    };
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  get running(): boolean {
    return !!this.#proc?.alive;
  }

  /** True once a dedicated process serves (promotion done). */
  get direct(): boolean {
    return !!this.#proc?.direct;
  }

  cpuMs(): number {
    let ticks = this.#proc?.lastTicks ?? 0;
    for (const d of this.#draining) ticks += d.lastTicks;
    return this.#cpuDoneMs + ticks * CLK_MS;
  }

  /**
   * An invocation begins in `proc` (a request, or a scheduled() run): it brings cpuMsPerRequest ms to the process's
   * CPU account. Budget left by earlier invocations is kept up to one invocation's worth (their waitUntil work may
   * still run), so the account holds at most (invocations in flight + 1) x cpuMsPerRequest.
   */
  enter(proc: WorkerdProcess, abort: (reason: KillReason) => void): Flight {
    const cpuAtStart = proc.cpuTicks();
    const flight: Flight = { proc, cpuAtStart, abort };
    this.flights.add(flight);
    const budget = this.opts.cpuMsPerRequest;
    if (!proc.invoked) {
      // The first invocation ends the process's start-up: the CPU it used before (workerd's start, the module's
      // compile and top-level code, V8's work after them) is not charged to anyone's budget.
      proc.invoked = true;
      proc.lastTicks = cpuAtStart;
      proc.cpuLeftMs = budget;
      proc.allowanceMs = HOUSEKEEPING_BURST_MS;
      proc.allowanceAt = performance.now();
    } else {
      let n = 0;
      for (const f of this.flights) if (f.proc === proc) n++;
      proc.cpuLeftMs = Math.min(proc.cpuLeftMs + budget, budget * (n + 1));
    }
    this.lastUsed = Date.now();
    return flight;
  }

  /** The invocation ended (answered, failed or aborted); what its work goes on using is charged to the account. */
  leave(flight: Flight): void {
    this.flights.delete(flight);
    this.lastUsed = flight.proc.lastLeftAt = Date.now();
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
    // No pool: a dedicated process at once (a workerd start per start, no loader, no --experimental needed).
    if (this.opts.pool.size === 0) return this.#startDirect();
    const proc = await this.opts.pool.claim();
    proc.sink = this.#out;
    try {
      await proc.load(this.opts.spec, this.#limits);
    } catch (e) {
      await proc.close();
      throw e;
    }
    if (this.#closed) {
      await proc.close();
      throw new Error("function process closed");
    }
    this.#serve(proc);
    this.#timer ??= setInterval(() => this.#watch(), this.opts.watchdogMs);
    // Later than the pool's refill and the first requests: spawn() blocks the event loop for a few ms.
    if (this.opts.promote) {
      clearTimeout(this.#promoteTimer);
      this.#promoteTimer = setTimeout(() => void this.#promote(proc), 300);
      this.#promoteTimer.unref();
    }
    return proc;
  }

  async #startDirect(): Promise<WorkerdProcess> {
    const proc = await this.opts.pool.startDirect(this.opts.spec, this.#limits);
    if (this.#closed) {
      await proc.close();
      throw new Error("function process closed");
    }
    this.#serve(proc);
    this.#timer ??= setInterval(() => this.#watch(), this.opts.watchdogMs);
    return proc;
  }

  #serve(proc: WorkerdProcess): void {
    // Its start-up so far (workerd's start, the module's top-level code) was held to the start limit; the watchdog
    // charges from here on.
    proc.lastTicks = proc.servingTicks = proc.cpuTicks();
    proc.sink = this.#out;
    this.#proc = proc;
    this.#ready = Promise.resolve(proc);
    this.opts.onAttach(proc);
    void proc.gone.then(() => {
      if (this.#proc === proc) this.#detach(proc);
    });
  }

  async #promote(from: WorkerdProcess): Promise<void> {
    if (this.#closed || this.#proc !== from) return;
    let direct: WorkerdProcess;
    try {
      direct = await this.opts.pool.startDirect(this.opts.spec, this.#limits);
    } catch (e) {
      this.opts.log.warn("edge function: its dedicated process did not start; the pooled one keeps serving", {
        function: this.opts.name,
        error: (e as Error).message,
      });
      return;
    }
    if (this.#closed || this.#proc !== from || !from.alive) {
      await direct.close();
      return;
    }
    this.#serve(direct);
    this.#draining.add(from);
    this.#reap();
  }

  /**
   * Close replaced processes that have no invocation left and whose last one ended DRAIN_GRACE_MS ago (its waitUntil
   * work may still run; it stays charged to the process's CPU account meanwhile); `dead`: one the watchdog killed.
   */
  #reap(dead?: WorkerdProcess): void {
    const now = Date.now();
    for (const d of this.#draining) {
      if (d !== dead && ([...this.flights].some((f) => f.proc === d) || now - d.lastLeftAt < DRAIN_GRACE_MS)) continue;
      this.#draining.delete(d);
      this.#cpuDoneMs += d.lastTicks * CLK_MS;
      this.opts.onDetach(d);
      void d.close();
    }
  }

  #detach(proc: WorkerdProcess): void {
    if (this.#proc !== proc) return;
    this.#cpuDoneMs += proc.lastTicks * CLK_MS;
    this.#proc = undefined;
    this.#ready = undefined;
    this.rssBytes = 0;
    this.opts.onDetach(proc);
    void proc.close();
  }

  #watch(): void {
    for (const p of [...this.#draining, ...(this.#proc ? [this.#proc] : [])]) this.#watchOne(p);
    if (this.#draining.size > 0) this.#reap();
  }

  #watchOne(proc: WorkerdProcess): void {
    const pid = proc.pid;
    if (!pid) return;
    const s = sampleProc(pid);
    if (!s) return;
    const delta = s.cpuTicks - proc.lastTicks;
    proc.lastTicks = s.cpuTicks;
    if (proc === this.#proc) this.rssBytes = s.rssBytes;
    if (s.rssBytes > this.opts.memoryBytes) {
      this.#limit(proc, "memory");
      return;
    }
    if (!proc.invoked) {
      // Start-up (served, no invocation yet): no user code runs without an invocation (workerd refuses timers and I/O
      // in the global scope), so this is workerd's and V8's own work; held to the start limit, counted from serving.
      if ((s.cpuTicks - proc.servingTicks) * CLK_MS > START_CPU_MS) this.#limit(proc, "cpu");
      return;
    }
    // The CPU account: every tick since the first invocation is paid, first from the housekeeping allowance, then
    // from what the invocations brought. Nothing is reset by a quiet sample, so work spread thin (a waitUntil loop
    // that gets a fifth of a core on a loaded machine and shows no tick in most samples) adds up all the same.
    proc.allowanceMs = Math.min(
      HOUSEKEEPING_BURST_MS,
      proc.allowanceMs + ((s.at - proc.allowanceAt) * HOUSEKEEPING_MS_PER_S) / 1000,
    );
    proc.allowanceAt = s.at;
    const used = delta * CLK_MS;
    const free = Math.min(used, proc.allowanceMs);
    proc.allowanceMs -= free;
    proc.cpuLeftMs -= used - free;
    if (proc.cpuLeftMs < 0) {
      this.#limit(proc, "cpu");
      return;
    }
    // In flight, at once: the process's CPU since its oldest invocation began, against that many budgets (a loop in
    // one request uses a whole core and crosses it within a sample or two; concurrent honest requests share theirs).
    let oldest = Number.POSITIVE_INFINITY;
    let n = 0;
    for (const f of this.flights)
      if (f.proc === proc) {
        oldest = Math.min(oldest, f.cpuAtStart);
        n++;
      }
    if (n > 0 && (s.cpuTicks - oldest) * CLK_MS > this.opts.cpuMsPerRequest * n) this.#limit(proc, "cpu");
  }

  #limit(proc: WorkerdProcess, reason: KillReason): void {
    this.opts.log.warn("edge function over its limit: killing its workerd process", {
      function: this.opts.name,
      reason,
      rssBytes: this.rssBytes,
    });
    proc.kill();
    for (const f of this.flights)
      if (f.proc === proc) {
        this.flights.delete(f);
        f.abort(reason);
      }
    this.opts.onKill(reason);
    this.restarts++;
    if (this.#draining.has(proc)) {
      this.#reap(proc);
      return;
    }
    this.#detach(proc);
    // Warm again for the next request (other requests already wait on ready()).
    if (!this.#closed) this.ready().catch(() => {});
  }

  /** Give the process up when idle (no request in flight): the next request claims a pooled one. */
  sleep(): void {
    if (this.#proc && this.flights.size === 0) {
      clearTimeout(this.#promoteTimer);
      this.#detach(this.#proc);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#promoteTimer);
    const procs = [...this.#draining, ...(this.#proc ? [this.#proc] : [])];
    if (this.#proc) this.#detach(this.#proc);
    this.#draining.clear();
    await Promise.all(procs.map((p) => p.close()));
    this.#sink.close();
  }
}
