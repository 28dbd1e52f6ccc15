/**
 * Pre-started idle workerd processes (edge.poolSize), so a deploy, a rollback, a restart after a limit kill or the
 * first request to a function that was stopped for being idle pays a code load (a few ms) instead of workerd's
 * start (20-40 ms, more on a loaded machine). A claimed process is replaced in the background. Idle processes hold
 * no function and no user code; poolSize 0 starts a process on each claim.
 */
import type { Logger } from "../core/logger.ts";
import { type LoadSpec, type SpawnOptions, type StartLimits, WorkerdProcess } from "./workerd.ts";

const REFILL_DELAY_MS = 100;

export class WorkerdPool {
  readonly #size: number;
  readonly #spawn: SpawnOptions;
  readonly #log: Logger;
  readonly #idle: WorkerdProcess[] = [];
  readonly #starting = new Set<Promise<void>>();
  #closed = false;
  /** Consecutive failed starts: refills stop after a few (a broken workerd binary), the next claim tries again. */
  #failures = 0;
  #refill: NodeJS.Timeout | undefined;

  constructor(o: { size: number; spawn: SpawnOptions; log: Logger }) {
    this.#size = o.size;
    this.#spawn = o.spawn;
    this.#log = o.log;
  }

  /** Processes kept idle (edge.poolSize). */
  get size(): number {
    return this.#size;
  }

  get idle(): number {
    return this.#idle.length;
  }

  /** Pids of the idle processes (the monitor's and the bench's RSS figures). */
  pids(): number[] {
    return this.#idle.flatMap((p) => (p.pid ? [p.pid] : []));
  }

  /** Start processes until `size` are idle or starting. */
  fill(): void {
    while (!this.#closed && this.#failures < 3 && this.#idle.length + this.#starting.size < this.#size) {
      const p = this.#start().then(
        (proc) => {
          this.#failures = 0;
          if (this.#closed) void proc.close();
          else this.#idle.push(proc);
        },
        (e: Error) => {
          this.#failures++;
          this.#log.warn("edge pool: a workerd process did not start", { error: e.message });
        },
      );
      this.#starting.add(p);
      void p.finally(() => {
        this.#starting.delete(p);
        this.fill();
      });
    }
  }

  /** Resolves once the pool is full (or no start is in progress): benches and tests wait on it. */
  async settled(): Promise<void> {
    this.fill();
    while (this.#starting.size > 0) await Promise.all(this.#starting);
  }

  async #start(): Promise<WorkerdProcess> {
    const proc = new WorkerdProcess(this.#spawn);
    try {
      await proc.ready();
      return proc;
    } catch (e) {
      await proc.close();
      throw e;
    }
  }

  /** A process dedicated to one function (its modules in the config), started and answering its probe. */
  async startDirect(spec: LoadSpec, limits?: StartLimits): Promise<WorkerdProcess> {
    const proc = new WorkerdProcess({ ...this.#spawn, direct: spec });
    try {
      await proc.ready(limits);
      return proc;
    } catch (e) {
      await proc.close();
      throw e;
    }
  }

  /** A started process, from the pool when one is idle (then refilled in the background), else a new one. */
  async claim(): Promise<WorkerdProcess> {
    this.#failures = 0;
    let proc = this.#idle.shift();
    while (proc && !proc.alive) {
      void proc.close();
      proc = this.#idle.shift();
    }
    // The refill waits a little: spawn() blocks the event loop for a few ms (more on a loaded machine), which would
    // land on the claimer's load and first request.
    clearTimeout(this.#refill);
    this.#refill = setTimeout(() => this.fill(), REFILL_DELAY_MS);
    this.#refill.unref();
    return proc ?? this.#start();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#refill);
    await Promise.allSettled([...this.#starting]);
    await Promise.all(this.#idle.splice(0).map((p) => p.close()));
  }
}
