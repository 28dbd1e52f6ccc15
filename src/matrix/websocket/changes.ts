/**
 * What changed on the stream, for the WebSocket hub's fast path (service/sync-fast.ts): which positions were
 * plain room events (and in which room) and which were anything else, plus the reads shared by every
 * connection for one snapshot (a room's members, its new-event slice per filter).
 */
import type { Homeserver } from "../hs.ts";
import type { Filter } from "../service/filters.ts";
import { loadMembers } from "../service/sync-context.ts";
import { isPlainEvent, type RoomSlice, roomSlice } from "../service/sync-fast.ts";
import type { MembershipRow } from "../store/types.ts";

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
}

/** Fast-path log entries kept at most (older tokens take the full computation). */
const MAX_LOG = 10_000;

export class StreamChanges {
  readonly #hs: Homeserver;
  /**
   * What each stream position after `#pos` was: a room ID (a plain room event) or null (anything else).
   * Filled by the stream hooks, consumed by classify().
   */
  readonly #marks = new Map<number, string | null>();
  /** Last classified position; `#slowMark`: the last position that was not a plain room event. */
  #pos: number;
  #slowMark: number;
  /** Plain room events after #slowMark, in stream order. */
  #log: { pos: number; roomId: string }[] = [];
  #wc: WakeCache;

  constructor(hs: Homeserver, stopped: AbortSignal) {
    this.#hs = hs;
    this.#pos = hs.stream.current;
    this.#slowMark = this.#pos;
    this.#wc = { upto: this.#pos, rooms: new Map(), slices: new Map() };
    this.#hook(stopped);
  }

  /**
   * Learn what each stream position is: a plain room event is fast-path material, anything else is not. The
   * writer reports a position before it announces the advance, so its mark is set before the hub classifies
   * it; an unreported position (a failed write) counts as "anything".
   */
  #hook(stopped: AbortSignal): void {
    const marks = this.#marks;
    const off = this.#hs.stream.onWritten((pos, ev) => {
      marks.set(pos, ev && isPlainEvent(ev) ? ev.roomId : null);
    });
    stopped.addEventListener("abort", off, { once: true });
  }

  /** Classify positions up to `upto`: the rooms with new plain events, or null when anything else happened. */
  classify(upto: number): Set<string> | null {
    const rooms = new Set<string>();
    let slow = false;
    for (let p = this.#pos + 1; p <= upto; p++) {
      const roomId = this.#marks.get(p);
      this.#marks.delete(p);
      if (roomId === undefined || roomId === null) slow = true;
      else {
        rooms.add(roomId);
        this.#log.push({ pos: p, roomId });
      }
    }
    if (upto > this.#pos) this.#pos = upto;
    if (slow || this.#log.length > MAX_LOG) {
      this.#slowMark = this.#pos;
      this.#log = [];
    }
    return slow ? null : rooms;
  }

  /** Whether everything in (since, upto] is classified and plain room events. */
  fastFrom(since: number, upto: number): boolean {
    return since >= this.#slowMark && upto === this.#pos;
  }

  #wake(upto: number): WakeCache {
    if (this.#wc.upto !== upto) this.#wc = { upto, rooms: new Map(), slices: new Map() };
    return this.#wc;
  }

  /** A room's members and newest stream at snapshot `upto`, read once for every connection. */
  roomInfo(upto: number, roomId: string): Promise<RoomInfo> {
    const wc = this.#wake(upto);
    let p = wc.rooms.get(roomId);
    if (!p) {
      p = (async () => {
        const maxStreams = await this.#hs.store.getRoomMaxStreams([roomId]);
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
   * of them cannot be sliced (the caller computes in full). Only valid when fastFrom(since, upto).
   */
  async slices(
    userId: string,
    since: number,
    upto: number,
    filter: Filter,
    filterKey: string,
  ): Promise<RoomSlice[] | null> {
    const roomIds = new Set<string>();
    for (let i = this.#log.length - 1; i >= 0 && this.#log[i].pos > since; i--) roomIds.add(this.#log[i].roomId);
    const wc = this.#wake(upto);
    const out: RoomSlice[] = [];
    for (const roomId of roomIds) {
      const info = await this.roomInfo(upto, roomId);
      if (!info.joined.has(userId)) continue;
      const key = `${roomId}|${since}|${filterKey}`;
      let p = wc.slices.get(key);
      if (!p) {
        p = roomSlice(this.#hs, roomId, since, upto, filter, info.maxStream, info.members);
        wc.slices.set(key, p);
      }
      const slice = await p;
      if (!slice) return null;
      out.push(slice);
    }
    return out;
  }
}
