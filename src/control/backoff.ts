/**
 * The restart delay of one supervised service. Doubling from initialMs up to maxMs stops a service that cannot
 * start from spinning; resetting once it is healthy again (after resetAfterMs, default at once) means a crash
 * that a bad request causes now and then costs initialMs each time, not an ever longer outage.
 */
export interface BackoffConfig {
  initialMs: number;
  maxMs: number;
  resetAfterMs: number;
}

export class Backoff {
  #attempt = 0;
  #healthySince: number | undefined;
  readonly #c: () => BackoffConfig;

  /** `config` is read on every use: a restart after a config edit picks up new values. */
  constructor(config: () => BackoffConfig) {
    this.#c = config;
  }

  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next restart; each call counts one more failure. */
  next(): number {
    const { initialMs, maxMs } = this.#c();
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    this.#healthySince = undefined;
    return delay;
  }

  /** A passed health check at `now`. */
  healthy(now: number): void {
    this.#healthySince ??= now;
    if (now - this.#healthySince >= this.#c().resetAfterMs) this.#attempt = 0;
  }

  /** A failed health check: the healthy stretch is over. */
  unhealthy(): void {
    this.#healthySince = undefined;
  }

  reset(): void {
    this.#attempt = 0;
    this.#healthySince = undefined;
  }
}
