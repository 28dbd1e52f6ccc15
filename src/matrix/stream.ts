/**
 * The one stream counter. Every write that /sync must see takes the next position here, and the writes run
 * one at a time so that commit order equals stream order: a reader that has seen position N has seen
 * everything <= N. `current` only advances after the write committed. With several workers (cluster/), positions
 * come from a StreamSequencer whose turns are exclusive across processes, and observe() advances `current` to what
 * the others committed.
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

/**
 * `plainRoom`: set for a position another process committed (cluster/), whose event is not here: the room of a
 * plain room event there (event and tag are null then).
 */
type Listener = (pos: number, event: NewEvent | null, tag: WriteTag | null, plainRoom?: string) => void;

/**
 * Where positions come from when several processes write (cluster/positions.ts): `run` calls `fn` with `n`
 * consecutive fresh positions while no other writer of any process commits, and publishes `first + n - 1` as
 * committed once `fn` settled. Without one, positions come from this process's counter (one writer).
 */
export interface StreamSequencer {
  run<T>(n: number, fn: (first: number) => Promise<T>): Promise<T>;
}

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
  readonly #seq: StreamSequencer | null;

  constructor(
    maxPersisted: number,
    onAdvance: () => void,
    persist: (events: NewEvent[]) => Promise<void>,
    sequencer: StreamSequencer | null = null,
  ) {
    this.#next = maxPersisted + 1;
    this.#current = maxPersisted;
    this.#onAdvance = onAdvance;
    this.#persist = persist;
    this.#seq = sequencer;
  }

  /**
   * Another process committed every position up to `upto` (cluster/): advance and wake the readers. `marks` say
   * what some of the positions were (a plain room event's room, or a write's tag); the others count as anything.
   */
  observe(upto: number, marks: Array<{ pos: number; mark: string | WriteTag | null }> = []): void {
    if (upto <= this.#current) return;
    for (const m of marks) {
      if (m.pos <= this.#current || m.pos > upto) continue;
      for (const l of this.#listeners)
        if (typeof m.mark === "string") l(m.pos, null, null, m.mark);
        else if (m.mark) l(m.pos, null, m.mark);
    }
    this.#advance(upto);
  }

  /** `n` fresh positions: from the sequencer (several processes), else this process's counter. */
  #allocate<T>(n: number, fn: (first: number) => Promise<T>): Promise<T> {
    if (this.#seq) return this.#seq.run(n, fn);
    const first = this.#next;
    this.#next += n;
    return fn(first);
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
    let pos = 0;
    try {
      return await this.#allocate(1, async (p) => {
        pos = p;
        const out = await fn(p);
        this.#emit(p, null, tag);
        return out;
      });
    } finally {
      if (pos) this.#advance(pos);
    }
  }

  async #runBatch(): Promise<void> {
    // Everything queued until now (including what arrived while earlier writes ran) goes into this commit.
    this.#batchScheduled = false;
    const batch = this.#queued;
    this.#queued = [];
    if (batch.length === 0) return;
    let failed: unknown = null;
    await this.#allocate(batch.length, (first) => this.#commitBatch(batch, first)).catch((e) => {
      failed = e;
    });
    // The sequencer itself failed (no positions): every caller gets its error.
    if (failed) for (const q of batch) q.reject(failed);
  }

  async #commitBatch(
    batch: Array<{ event: Omit<NewEvent, "stream">; resolve: (pos: number) => void; reject: (e: unknown) => void }>,
    first: number,
  ): Promise<void> {
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
    // Several processes: another's committed position may already be observed past ours.
    if (pos > this.#current) this.#current = pos;
    this.#onAdvance();
  }
}
