/**
 * The one stream counter. Every write that /sync must see takes the next position through write(),
 * which runs the writes one at a time so that commit order equals stream order: a reader that has seen
 * position N has seen everything <= N. `current` only advances after the write committed.
 */
export class StreamWriter {
  #next: number;
  #current: number;
  #tail: Promise<unknown> = Promise.resolve();
  readonly #onAdvance: () => void;

  constructor(maxPersisted: number, onAdvance: () => void) {
    this.#next = maxPersisted + 1;
    this.#current = maxPersisted;
    this.#onAdvance = onAdvance;
  }

  /** Highest stream position whose write has committed. */
  get current(): number {
    return this.#current;
  }

  /** Run `fn` with a fresh position, after every earlier write finished. A failed write leaves a harmless gap. */
  write<T>(fn: (pos: number) => Promise<T>): Promise<T> {
    const run = async () => {
      const pos = this.#next++;
      try {
        return await fn(pos);
      } finally {
        this.#current = pos;
        this.#onAdvance();
      }
    };
    const p = this.#tail.then(run, run);
    this.#tail = p.catch(() => {});
    return p;
  }
}
