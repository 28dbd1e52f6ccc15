/**
 * The one stream counter. Every write that /sync must see takes the next position here, and the writes run
 * one at a time so that commit order equals stream order: a reader that has seen position N has seen
 * everything <= N. `current` only advances after the write committed.
 *
 * Room events go through persistEvent(), which commits every event queued while the previous commit ran in
 * one transaction (group commit): many senders share one commit, and a failed batch is retried event by
 * event so one bad event fails alone.
 */
import type { NewEvent } from "./store/types.ts";

type Job = { kind: "fn"; fn: (pos: number) => Promise<unknown> } | { kind: "events" };

export class StreamWriter {
  #next: number;
  #current: number;
  #tail: Promise<unknown> = Promise.resolve();
  readonly #onAdvance: () => void;
  readonly #persist: (events: NewEvent[]) => Promise<void>;
  /** Events waiting for the next batch, with their callers' resolvers. */
  #queued: Array<{ event: Omit<NewEvent, "stream">; resolve: (pos: number) => void; reject: (e: unknown) => void }> =
    [];
  #batchScheduled = false;
  readonly #listeners = new Set<(pos: number, event: NewEvent | null) => void>();

  constructor(maxPersisted: number, onAdvance: () => void, persist: (events: NewEvent[]) => Promise<void>) {
    this.#next = maxPersisted + 1;
    this.#current = maxPersisted;
    this.#onAdvance = onAdvance;
    this.#persist = persist;
  }

  /** Highest stream position whose write has committed. */
  get current(): number {
    return this.#current;
  }

  /**
   * Tell `fn` what each committed position was — the room event, or null for any other write — before
   * `current` advances past it (a failed write is never reported). Returns the unsubscribe function.
   */
  onWritten(fn: (pos: number, event: NewEvent | null) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #emit(pos: number, event: NewEvent | null): void {
    for (const l of this.#listeners) l(pos, event);
  }

  /** Run `fn` with a fresh position, after every earlier write finished. A failed write leaves a harmless gap. */
  write<T>(fn: (pos: number) => Promise<T>): Promise<T> {
    return this.#enqueue({ kind: "fn", fn }) as Promise<T>;
  }

  /** Persist one room event with the next position; resolves with that position once committed. */
  persistEvent(event: Omit<NewEvent, "stream">): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.#queued.push({ event, resolve, reject });
      if (!this.#batchScheduled) {
        this.#batchScheduled = true;
        void this.#enqueue({ kind: "events" });
      }
    });
  }

  #enqueue(job: Job): Promise<unknown> {
    const run = () => (job.kind === "fn" ? this.#runFn(job.fn) : this.#runBatch());
    const p = this.#tail.then(run, run);
    this.#tail = p.catch(() => {});
    return p;
  }

  async #runFn(fn: (pos: number) => Promise<unknown>): Promise<unknown> {
    const pos = this.#next++;
    try {
      const out = await fn(pos);
      this.#emit(pos, null);
      return out;
    } finally {
      this.#advance(pos);
    }
  }

  async #runBatch(): Promise<void> {
    // Everything queued until now (including what arrived while earlier writes ran) goes into this commit.
    this.#batchScheduled = false;
    const batch = this.#queued;
    this.#queued = [];
    if (batch.length === 0) return;
    const first = this.#next;
    this.#next += batch.length;
    const rows = batch.map((q, i) => ({ ...q.event, stream: first + i }) as NewEvent);
    try {
      await this.#persist(rows);
      for (const [i, q] of batch.entries()) {
        this.#emit(first + i, rows[i]);
        q.resolve(first + i);
      }
    } catch (e) {
      if (batch.length === 1) batch[0].reject(e);
      else
        for (const [i, q] of batch.entries()) {
          try {
            await this.#persist([rows[i]]);
            this.#emit(first + i, rows[i]);
            q.resolve(first + i);
          } catch (err) {
            q.reject(err);
          }
        }
    } finally {
      this.#advance(first + batch.length - 1);
    }
  }

  #advance(pos: number): void {
    this.#current = pos;
    this.#onAdvance();
  }
}
