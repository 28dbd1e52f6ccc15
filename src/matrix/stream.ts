/**
 * The one stream counter. Every write that /sync must see takes the next position here, and the writes run
 * one at a time so that commit order equals stream order: a reader that has seen position N has seen
 * everything <= N. `current` only advances after the write committed. With several workers (cluster/), positions
 * come from a StreamSequencer shared by every process, whose writers commit concurrently: `current` is then the
 * cluster's persisted position (everything <= it settled), which the sequencer reports through observe() — this
 * process's own commits included, so they become visible here when no other writer's older position is pending.
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

/** A room event waiting for the next batch, with its caller's resolvers. */
type Queued = { event: Omit<NewEvent, "stream">; resolve: (pos: number) => void; reject: (e: unknown) => void };

type Job = { kind: "fn"; fn: (pos: number) => Promise<unknown>; tag: WriteTag | null } | { kind: "events" };

/**
 * `plainRoom`: set for a position another process committed (cluster/), whose event is not here: the room of a
 * plain room event there (event and tag are null then).
 */
type Listener = (pos: number, event: NewEvent | null, tag: WriteTag | null, plainRoom?: string) => void;

/**
 * Where positions come from when several processes write (cluster/positions.ts): `run` calls `fn` with `n` fresh
 * increasing positions (other processes may take the ones between) and tells the others once `fn` settled; the
 * persisted position comes back through observe(). Without one, positions come from this process's counter.
 */
export interface StreamSequencer {
  run<T>(n: number, fn: (positions: number[]) => Promise<T>): Promise<T>;
  /**
   * A turn taken inside the write's own transaction (room events on PostgreSQL): `fn` runs the statements `turn`
   * gives in that transaction, so the positions cost no round trip of their own and the turn ends with the commit.
   */
  runInTx?<T>(n: number, fn: (turn: TxTurn) => Promise<T>): Promise<T>;
}

/** What a write's transaction runs for a StreamSequencer turn taken inside it (cluster/positions.ts). */
export interface TxTurn {
  /** Statements (no parameters) sent with BEGIN in one round trip; the last one's rows carry the positions, `p`. */
  readonly open: string;
  /** The positions, from `open`'s last rows. */
  opened(rows: Array<{ p: unknown }>): number[];
  /** Statements (no parameters) sent with COMMIT, before it, in one round trip. */
  readonly close: string;
  /** Called right before `close` and COMMIT are sent. */
  closing(): void;
  /** Called once COMMIT succeeded, with `close`'s results. */
  committed(results: unknown[]): void;
}

/** Persist room events in a turn's transaction (TxTurn), returning their positions in order. */
export type PersistInTurn = (events: Array<Omit<NewEvent, "stream">>, turn: TxTurn) => Promise<number[]>;

export class StreamWriter {
  #next: number;
  #current: number;
  #tail: Promise<unknown> = Promise.resolve();
  readonly #onAdvance: () => void;
  readonly #persist: (events: NewEvent[]) => Promise<void>;
  /** Events waiting for the next batch, with their callers' resolvers. */
  #queued: Queued[] = [];
  #batchScheduled = false;
  readonly #listeners = new Set<Listener>();
  readonly #seq: StreamSequencer | null;
  /** Several processes: the highest position this process committed (what its callers wait to see). */
  #lastOwn = 0;
  /** Callers waiting for `current` to reach a position (several processes only). */
  #waiters: Array<{ pos: number; resolve: () => void }> = [];
  /** Several processes on PostgreSQL: room events take their turn inside their own transaction. */
  readonly #persistInTurn: PersistInTurn | null;

  constructor(
    maxPersisted: number,
    onAdvance: () => void,
    persist: (events: NewEvent[]) => Promise<void>,
    sequencer: StreamSequencer | null = null,
    persistInTurn: PersistInTurn | null = null,
  ) {
    this.#next = maxPersisted + 1;
    this.#current = maxPersisted;
    this.#onAdvance = onAdvance;
    this.#persist = persist;
    this.#seq = sequencer;
    this.#persistInTurn = sequencer?.runInTx && persistInTurn ? persistInTurn : null;
  }

  /**
   * Every position up to `upto` is settled across the cluster (cluster/): advance and wake the readers. `marks` say
   * what some of the positions were (see mark()).
   */
  observe(upto: number, marks: Array<{ pos: number; mark: string | WriteTag | null }> = []): void {
    this.mark(marks);
    if (upto <= this.#current) return;
    this.#current = upto;
    this.#onAdvance();
    if (this.#waiters.length) {
      const ready = this.#waiters.filter((w) => w.pos <= upto);
      this.#waiters = this.#waiters.filter((w) => w.pos > upto);
      for (const w of ready) w.resolve();
    }
  }

  /**
   * What positions another process committed were (a plain room event's room, or a write's tag), told before
   * `current` passes them; positions never told count as anything.
   */
  mark(marks: Array<{ pos: number; mark: string | WriteTag | null }>): void {
    for (const m of marks) {
      // Told by other workers over the bus: skip anything malformed rather than wake listeners with it.
      if (typeof m !== "object" || m === null || !Number.isSafeInteger(m.pos) || m.pos <= this.#current) continue;
      for (const l of this.#listeners)
        if (typeof m.mark === "string") l(m.pos, null, null, m.mark);
        else if (m.mark) l(m.pos, null, m.mark);
    }
  }

  /**
   * Resolves once `current` reached `pos` (several processes: another writer's older position may hold it back
   * for a moment), or after `ms` anyway — a caller told "sent" then sees its write in its next /sync.
   */
  visible(pos: number = this.#lastOwn, ms = 10_000): Promise<void> {
    if (pos <= this.#current) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== entry);
        resolve();
      }, ms);
      const entry = {
        pos,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      };
      this.#waiters.push(entry);
    });
  }

  /** Whether positions come from a sequencer shared with other processes. */
  get shared(): boolean {
    return this.#seq !== null;
  }

  /** `n` fresh positions: from the sequencer (several processes), else this process's counter. */
  #allocate<T>(n: number, fn: (positions: number[]) => Promise<T>): Promise<T> {
    if (this.#seq) return this.#seq.run(n, fn);
    const first = this.#next;
    this.#next += n;
    return fn(Array.from({ length: n }, (_, i) => first + i));
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
    const p = this.#enqueue({ kind: "fn", fn, tag }) as Promise<T>;
    if (!this.#seq) return p;
    // Several processes: the caller sees its write in its next read, as with one.
    return p.then(async (out) => {
      await this.visible();
      return out;
    });
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
      return await this.#allocate(1, async ([p]) => {
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
    if (this.#persistInTurn) return this.#commitInTurns(batch);
    let failed: unknown = null;
    await this.#allocate(batch.length, (ps) => this.#commitBatch(batch, ps)).catch((e) => {
      failed = e;
    });
    // The sequencer itself failed (no positions): every caller gets its error.
    if (failed) for (const q of batch) q.reject(failed);
  }

  async #commitBatch(batch: Queued[], ps: number[]): Promise<void> {
    const rows = batch.map((q, i) => ({ ...q.event, stream: ps[i] }) as NewEvent);
    const last = ps[ps.length - 1];
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
            this.#emit(ps[i], rows[i]);
            q.resolve(ps[i]);
          } catch (err) {
            q.reject(err);
          }
        }
    }
    if (committed) for (const [i, row] of rows.entries()) this.#emit(ps[i], row);
    // Wake the readers (long-polls, the WebSocket hub) before the senders continue: a delivery does not wait
    // behind the senders' own responses.
    this.#advance(last);
    if (committed) for (const [i, q] of batch.entries()) q.resolve(ps[i]);
  }

  /**
   * Several processes on PostgreSQL: the batch in one turn inside its transaction. A failed batch is retried event
   * by event, each in a turn of its own (the failed turn's positions stay a harmless gap), so one bad event fails
   * alone.
   */
  async #commitInTurns(batch: Queued[]): Promise<void> {
    try {
      await this.#turnOf(batch);
    } catch (e) {
      if (batch.length === 1) batch[0].reject(e);
      else for (const q of batch) await this.#turnOf([q]).catch((err) => q.reject(err));
    }
  }

  async #turnOf(batch: Queued[]): Promise<void> {
    const persist = this.#persistInTurn!;
    const ps = await this.#seq!.runInTx!(batch.length, async (turn) => {
      const ps = await persist(
        batch.map((q) => q.event),
        turn,
      );
      // Told before the turn is published (its marks) and before `current` can pass the positions.
      for (const [i, q] of batch.entries()) this.#emit(ps[i], { ...q.event, stream: ps[i] } as NewEvent);
      return ps;
    });
    this.#advance(ps[ps.length - 1]);
    for (const [i, q] of batch.entries()) q.resolve(ps[i]);
  }

  #advance(pos: number): void {
    if (pos > this.#lastOwn) this.#lastOwn = pos;
    // Several processes: `current` is the cluster's persisted position, which the sequencer reports (observe()).
    if (this.#seq) return;
    if (pos > this.#current) this.#current = pos;
    this.#onAdvance();
  }
}
