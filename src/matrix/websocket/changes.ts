/**
 * What changed on the stream, for the WebSocket hub's fast path (service/sync/fast.ts): which positions were
 * plain room events (and in which room), which were tagged writes that only some users can see (presence,
 * receipts, account data, to-device, device lists: stream.ts WriteTag) and which were anything else, plus the
 * reads shared by every connection for one snapshot (a room's members, its new-event slice per filter).
 */
import type { Homeserver } from "../hs.ts";
import type { Filter } from "../service/filters.ts";
import { loadMembers } from "../service/sync/context.ts";
import { isPlainEvent, type RoomSlice, roomSlice } from "../service/sync/fast.ts";
import type { MembershipRow, StoredEvent } from "../store/types.ts";
import type { WriteTag } from "../stream.ts";
import { affects, audienceOf } from "./affects.ts";

export interface RoomInfo {
  maxStream: number | undefined;
  members: MembershipRow[];
  joined: Set<string>;
}

/** Shared reads of one snapshot (`upto`), computed once for every connection. */
interface WakeCache {
  upto: number;
  rooms: Map<string, Promise<RoomInfo>>;
  slices: Map<string, Promise<RoomSlice | null>>;
  /** Member state reads of the full computations at this snapshot (SyncCtx.shared). */
  states: Map<string, Promise<StoredEvent[]>>;
}

/** A tagged write in the log; `audience` stays null until looked up (unknown: counts as everyone). */
export interface TagEntry {
  pos: number;
  tag: WriteTag;
  audience: Set<string> | null;
}

type LogEntry = { pos: number; roomId: string } | TagEntry;

/** What classify() found: rooms with new plain events and tagged writes (null there: anything else happened). */
export interface Classified {
  rooms: Set<string>;
  tags: TagEntry[];
}

/** Fast-path log entries kept at most (older tokens take the full computation). */
const MAX_LOG = 10_000;

export class StreamChanges {
  readonly #hs: Homeserver;
  /**
   * What each stream position after `#pos` was: a room ID (a plain room event), a write tag, or null
   * (anything else). Filled by the stream hooks, consumed by classify().
   */
  readonly #marks = new Map<number, string | WriteTag | null>();
  /** Last classified position; `#slowMark`: the last position that was neither a plain event nor tagged. */
  #pos: number;
  #slowMark: number;
  /** Plain room events and tagged writes after #slowMark, in stream order. */
  #log: LogEntry[] = [];
  #wc: WakeCache;

  constructor(hs: Homeserver, stopped: AbortSignal) {
    this.#hs = hs;
    this.#pos = hs.stream.current;
    this.#slowMark = this.#pos;
    this.#wc = { upto: this.#pos, rooms: new Map(), slices: new Map(), states: new Map() };
    this.#hook(stopped);
  }

  /**
   * Learn what each stream position is: a plain room event is fast-path material, anything else is not. The
   * writer reports a position before it announces the advance, so its mark is set before the hub classifies
   * it; an unreported position (a failed write) counts as "anything".
   */
  #hook(stopped: AbortSignal): void {
    const marks = this.#marks;
    const off = this.#hs.stream.onWritten((pos, ev, tag, plainRoom) => {
      marks.set(pos, plainRoom ?? (ev ? (isPlainEvent(ev) ? ev.roomId : null) : tag));
    });
    stopped.addEventListener("abort", off, { once: true });
  }

  /**
   * Classify positions up to `upto`: the rooms with new plain events and the tagged writes, or null when
   * anything else happened.
   */
  classify(upto: number): Classified | null {
    const rooms = new Set<string>();
    const tags: TagEntry[] = [];
    let slow = false;
    for (let p = this.#pos + 1; p <= upto; p++) {
      const mark = this.#marks.get(p);
      this.#marks.delete(p);
      if (mark === undefined || mark === null) slow = true;
      else if (typeof mark === "string") {
        rooms.add(mark);
        this.#log.push({ pos: p, roomId: mark });
      } else {
        const entry: TagEntry = { pos: p, tag: mark, audience: null };
        tags.push(entry);
        this.#log.push(entry);
      }
    }
    if (upto > this.#pos) this.#pos = upto;
    if (slow || this.#log.length > MAX_LOG) {
      this.#slowMark = this.#pos;
      this.#log = [];
    }
    return slow ? null : { rooms, tags };
  }

  /**
   * Look up who can see a tagged write. Memberships are read as they are now, so when a change that is neither
   * plain nor tagged (a membership, say) is already written past the snapshot, the answer may be too new:
   * returns false then (the entry stays unknown = everyone), and the caller wakes every connection.
   */
  async resolve(entry: TagEntry): Promise<boolean> {
    const audience = await audienceOf(this.#hs, entry.tag);
    for (const mark of this.#marks.values()) if (mark === null) return false;
    entry.audience = audience;
    return true;
  }

  /** The last classified position. */
  get position(): number {
    return this.#pos;
  }

  /** Whether everything in (since, upto] is classified and plain room events or tagged writes. */
  fastFrom(since: number, upto: number): boolean {
    return since >= this.#slowMark && upto === this.#pos;
  }

  #wake(upto: number): WakeCache {
    if (this.#wc.upto !== upto) this.#wc = { upto, rooms: new Map(), slices: new Map(), states: new Map() };
    return this.#wc;
  }

  /** The reads the full computations at snapshot `upto` share (computeSync's `shared`). */
  sharedReads(upto: number): Map<string, Promise<StoredEvent[]>> {
    return this.#wake(upto).states;
  }

  /** A room's members and newest stream at snapshot `upto`, read once for every connection. */
  roomInfo(upto: number, roomId: string): Promise<RoomInfo> {
    const wc = this.#wake(upto);
    let p = wc.rooms.get(roomId);
    if (!p) {
      p = (async () => {
        const maxStreams = await this.#hs.store.events.getRoomMaxStreams([roomId]);
        const members = (await loadMembers(this.#hs, [roomId], maxStreams)).get(roomId) ?? [];
        const joined = new Set(members.flatMap((m) => (m.membership === "join" ? [m.userId] : [])));
        return { maxStream: maxStreams.get(roomId), members, joined };
      })();
      wc.rooms.set(roomId, p);
    }
    return p;
  }

  /**
   * The shared slices of the rooms `userId` is joined to that have new events in (since, upto]; null when one
   * of them cannot be sliced or a tagged write in the range reaches this connection (the caller computes in
   * full). Only valid when fastFrom(since, upto).
   */
  async slices(
    userId: string,
    since: number,
    upto: number,
    filter: Filter,
    filterKey: string,
  ): Promise<RoomSlice[] | null> {
    /** Rooms with new events, and the position of each one's first new event. */
    const rooms = new Map<string, number>();
    for (let i = this.#log.length - 1; i >= 0 && this.#log[i].pos > since; i--) {
      const e = this.#log[i];
      if ("roomId" in e) rooms.set(e.roomId, e.pos);
      // A tagged write this connection can receive: only the full computation knows how to deliver it.
      else if (affects(this.#hs, e.tag, e.audience, userId, filter)) return null;
    }
    const wc = this.#wake(upto);
    const out: RoomSlice[] = [];
    for (const [roomId, first] of rooms) {
      const info = await this.roomInfo(upto, roomId);
      if (!info.joined.has(userId)) continue;
      // Keyed by the first new event, not by `since`: the room had no event at all between any two tokens that
      // share it (plain ones are all in the log, others would be slow marks), so their slices are the same.
      const key = `${roomId}|${first}|${filterKey}`;
      let p = wc.slices.get(key);
      if (!p) {
        p = roomSlice(this.#hs, roomId, first - 1, upto, filter, info.maxStream, info.members);
        wc.slices.set(key, p);
      }
      const slice = await p;
      if (!slice) return null;
      out.push(slice);
    }
    return out;
  }
}
