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

/**
 * What a write other than a room event changed, when only some syncs can see it: listeners (the WebSocket hub)
 * then wake only the affected connections instead of all of them. An untagged write counts as "anything".
 */
export type WriteTag =
  /** A user's presence: seen by that user and everyone sharing a room with them. */
  | { kind: "presence"; userId: string }
  /** Only these users' own syncs see it (their account data, to-device messages sent to them). */
  | { kind: "users"; userIds: string[] }
  /** These users' device lists: seen by them and everyone sharing a room with one of them. */
  | { kind: "deviceLists"; userIds: string[] }
  /** A receipt in a room: its joined members see it (a private one only its owner). */
  | { kind: "receipt"; roomId: string; userId: string; private: boolean };

type Job = { kind: "fn"; fn: (pos: number) => Promise<unknown>; tag: WriteTag | null } | { kind: "events" };

type Listener = (pos: number, event: NewEvent | null, tag: WriteTag | null) => void;

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
  readonly #listeners = new Set<Listener>();

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
   * Tell `fn` what each committed position was — the room event, or null and the write's tag (null when
   * untagged) for any other write — before `current` advances past it (a failed write is never reported).
   * Returns the unsubscribe function.
   */
  onWritten(fn: Listener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #emit(pos: number, event: NewEvent | null, tag: WriteTag | null = null): void {
    for (const l of this.#listeners) l(pos, event, tag);
  }

  /**
   * Run `fn` with a fresh position, after every earlier write finished. A failed write leaves a harmless gap.
   * `tag` says whose syncs the write can change (omit it when unsure: then it counts as anything).
   */
  write<T>(fn: (pos: number) => Promise<T>, tag: WriteTag | null = null): Promise<T> {
    return this.#enqueue({ kind: "fn", fn, tag }) as Promise<T>;
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
    const run = () => (job.kind === "fn" ? this.#runFn(job.fn, job.tag) : this.#runBatch());
    const p = this.#tail.then(run, run);
    this.#tail = p.catch(() => {});
    return p;
  }

  async #runFn(fn: (pos: number) => Promise<unknown>, tag: WriteTag | null): Promise<unknown> {
    const pos = this.#next++;
    try {
      const out = await fn(pos);
      this.#emit(pos, null, tag);
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
    const last = first + batch.length - 1;
    let committed = false;
    try {
      await this.#persist(rows);
      committed = true;
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
    }
    if (committed) for (const [i, row] of rows.entries()) this.#emit(first + i, row);
    // Wake the readers (long-polls, the WebSocket hub) before the senders continue: a delivery does not wait
    // behind the senders' own responses.
    this.#advance(last);
    if (committed) for (const [i, q] of batch.entries()) q.resolve(first + i);
  }

  #advance(pos: number): void {
    this.#current = pos;
    this.#onAdvance();
  }
}
