/**
 * History visibility (spec client-server "History visibility", Server behaviour): the one function that decides
 * which events of a room a user may read. Every read path asks it: /sync (initial, incremental, and the
 * WebSocket's full computation), /messages, /context, /event, /state, /members, /search.
 *
 * An event is judged by the state of the room at it, i.e. before it: the m.room.history_visibility setting
 * (absent or not understood: `shared`) and the user's membership.
 *   1. `world_readable` → visible;  2. membership `join` → visible;
 *   3. `shared`, and the user joined the room at any point after the event → visible;
 *   4. membership `invite` and `invited` → visible;  5. otherwise hidden.
 * An m.room.history_visibility event is visible if the setting before *or* after it allows it; the user's own
 * membership event if their membership before *or* after it does. One addition, as Synapse does: the user's own
 * leave/ban that ends an invite, knock or join is always visible, or a rejected invite would never leave the
 * client's room list.
 *
 * Both inputs change only at state events, so the visible stream positions are a short list of ranges, computed
 * once per room and request from two state histories (store.events.getStateHistories: the room's visibility changes and
 * the user's membership events). Reads then ask the store for the events inside those ranges, not event by event.
 */
import { AmiError } from "../../core/errors.ts";
import type { Homeserver } from "../hs.ts";
import type { EventFilterQuery, RoomEventQuery, RoomStreamWindow, Store, StoredEvent } from "../store/types.ts";
import { requireRoomId } from "./room-access.ts";

export const MAX_STREAM = Number.MAX_SAFE_INTEGER;
const HV_TYPE = "m.room.history_visibility";
const KNOWN = new Set(["invited", "joined", "shared", "world_readable"]);

/** Stream positions lo..hi, both inclusive (hi = MAX_STREAM: no upper end). */
export interface StreamRange {
  lo: number;
  hi: number;
}

/** What one user may read of one room. */
export interface RoomVisibility {
  roomId: string;
  userId: string;
  /** The visible stream positions: ascending, disjoint, never adjacent. */
  ranges: StreamRange[];
  /** The user's current membership (null: never had one) and the stream of its event. */
  membership: string | null;
  membershipStream: number;
  /** The room's current history_visibility. */
  current: string;
}

function settingOf(e: StoredEvent): string {
  const v = e.pdu.content?.history_visibility;
  return typeof v === "string" && KNOWN.has(v) ? v : "shared";
}

function membershipOf(e: StoredEvent): string | null {
  const m = e.pdu.content?.membership;
  return typeof m === "string" ? m : null;
}

/**
 * The spec's algorithm over a room's history: `settings` are its m.room.history_visibility events and `members`
 * the user's m.room.member events, each oldest first. Returns the visible stream positions.
 */
export function visibleRanges(settings: StoredEvent[], members: StoredEvent[]): StreamRange[] {
  const points = [
    ...settings.map((e) => ({
      stream: e.stream,
      setting: settingOf(e),
      membership: undefined as string | null | undefined,
    })),
    ...members.map((e) => ({ stream: e.stream, setting: undefined, membership: membershipOf(e) })),
  ].sort((a, b) => a.stream - b.stream);
  let lastJoin = -1;
  for (const p of points) if (p.membership === "join") lastJoin = p.stream;
  const allow = (hv: string, m: string | null, stream: number) =>
    hv === "world_readable" ||
    m === "join" ||
    (hv === "shared" && lastJoin > stream) ||
    (hv === "invited" && m === "invite");

  const out: StreamRange[] = [];
  const add = (lo: number, hi: number) => {
    if (lo > hi) return;
    const last = out[out.length - 1];
    if (last && last.hi + 1 >= lo) last.hi = Math.max(last.hi, hi);
    else out.push({ lo, hi });
  };
  let hv = "shared";
  let m: string | null = null;
  let prev = -1;
  for (const p of points) {
    // Events strictly between two changes share one state; "joined after" holds for all of them or none.
    if (allow(hv, m, p.stream - 1)) add(prev + 1, p.stream - 1);
    if (p.setting !== undefined) {
      if (allow(hv, m, p.stream) || allow(p.setting, m, p.stream)) add(p.stream, p.stream);
      hv = p.setting;
    } else {
      const after = p.membership ?? null;
      const endsStay = (after === "leave" || after === "ban") && (m === "invite" || m === "knock" || m === "join");
      if (allow(hv, m, p.stream) || allow(hv, after, p.stream) || endsStay) add(p.stream, p.stream);
      m = after;
    }
    prev = p.stream;
  }
  if (allow(hv, m, MAX_STREAM)) add(prev + 1, MAX_STREAM);
  return out;
}

export function isVisible(ranges: StreamRange[], stream: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = ranges[mid];
    if (stream < r.lo) hi = mid - 1;
    else if (stream > r.hi) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * What `userId` may read of each room, with one store call for all of them. `upto`: judge as of this stream
 * (a sync snapshot), ignoring later state changes.
 */
export async function roomVisibilities(
  hs: Homeserver,
  userId: string,
  roomIds: string[],
  upto = MAX_STREAM,
): Promise<Map<string, RoomVisibility>> {
  const histories = await hs.store.events.getStateHistories(
    roomIds.flatMap((roomId) => [
      { roomId, type: HV_TYPE, stateKey: "" },
      { roomId, type: "m.room.member", stateKey: userId },
    ]),
  );
  const out = new Map<string, RoomVisibility>();
  roomIds.forEach((roomId, i) => {
    const settings = histories[2 * i].filter((e) => e.stream <= upto);
    const members = histories[2 * i + 1].filter((e) => e.stream <= upto);
    const last = members[members.length - 1];
    out.set(roomId, {
      roomId,
      userId,
      ranges: visibleRanges(settings, members),
      membership: last ? membershipOf(last) : null,
      membershipStream: last?.stream ?? 0,
      current: settings.length ? settingOf(settings[settings.length - 1]) : "shared",
    });
  });
  return out;
}

/** The visible ranges (visibleRanges) of `userId` in each room, for reads that have a store only. */
export async function visibleRangesOf(
  store: Store,
  userId: string,
  roomIds: string[],
): Promise<Map<string, StreamRange[]>> {
  const histories = await store.events.getStateHistories(
    roomIds.flatMap((roomId) => [
      { roomId, type: HV_TYPE, stateKey: "" },
      { roomId, type: "m.room.member", stateKey: userId },
    ]),
  );
  return new Map(roomIds.map((roomId, i) => [roomId, visibleRanges(histories[2 * i], histories[2 * i + 1])]));
}

/**
 * The visibility of one room for a reader; M_NOT_FOUND for an unknown room and M_FORBIDDEN for a user who may not
 * read it at all: not joined, the room not world-readable now, and neither an invitee of an `invited` room nor
 * someone who left (or was banned) after seeing something of it. Within, visibleRoomEvents and isVisible decide.
 */
export async function readableRoom(hs: Homeserver, roomId: string, userId: string): Promise<RoomVisibility> {
  requireRoomId(roomId);
  const [room, vis] = await Promise.all([hs.store.rooms.getRoom(roomId), roomVisibilities(hs, userId, [roomId])]);
  if (!room) throw new AmiError("M_NOT_FOUND", `Unknown room ${roomId}`);
  const v = vis.get(roomId)!;
  if (v.membership === "join" || v.current === "world_readable") return v;
  if (v.membership === "invite" && v.current === "invited") return v;
  if ((v.membership === "leave" || v.membership === "ban") && v.ranges.some((r) => r.lo < v.membershipStream)) return v;
  throw new AmiError("M_FORBIDDEN", `${userId} is not in room ${roomId}`);
}

/** The stream whose state the reader sees: now while joined, invited or the room is world-readable, else their leave. */
export function stateBound(v: RoomVisibility): number {
  return v.membership === "leave" || v.membership === "ban"
    ? v.current === "world_readable"
      ? MAX_STREAM
      : v.membershipStream
    : MAX_STREAM;
}

/**
 * getRoomEvents restricted to the visible ranges: up to `q.limit` visible events, walking the ranges in the
 * query's direction with one store call per range touched (usually one or two).
 */
export async function visibleRoomEvents(
  hs: Homeserver,
  ranges: StreamRange[],
  q: RoomEventQuery,
): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  const ordered = q.dir === "b" ? [...ranges].reverse() : ranges;
  for (const r of ordered) {
    const want = q.limit - out.length;
    if (want <= 0) break;
    // Store bounds are exclusive: a range lo..hi is (lo - 1, hi + 1); no bound past either end of the stream.
    const below = r.lo - 1;
    const above = r.hi >= MAX_STREAM ? undefined : r.hi + 1;
    let from: number;
    let to: number | undefined;
    if (q.dir === "b") {
      from = above === undefined ? q.from : Math.min(q.from, above);
      to = Math.max(q.to ?? -1, below);
      if (to < 0) to = undefined;
      if (from - 1 <= (to ?? -1)) continue;
    } else {
      from = Math.max(q.from, below);
      to = q.to === undefined ? above : above === undefined ? q.to : Math.min(q.to, above);
      if (to !== undefined && from + 1 >= to) continue;
    }
    out.push(...(await hs.store.events.getRoomEvents({ ...q, from, to, limit: want })));
  }
  return out;
}

/** The room state the reader may see (stateBound), optionally only of `types`. */
export async function readableState(hs: Homeserver, v: RoomVisibility, types?: string[]): Promise<StoredEvent[]> {
  const at = stateBound(v);
  if (at === MAX_STREAM) {
    const all = await hs.store.events.getCurrentState(v.roomId);
    return types ? all.filter((e) => types.includes(e.type)) : all;
  }
  return hs.store.events.getStateAt(v.roomId, at, types);
}

/** A /sync window (RoomStreamWindow) and the visible positions in it (absent: all of it). */
export interface VisibleWindow extends RoomStreamWindow {
  visible?: StreamRange[];
}

/**
 * getLatestEventsPerRoom restricted to each window's visible ranges: up to `limit` visible events per window,
 * newest first. A round asks the store once for every window, each at its highest visible range not yet read;
 * windows whose range ran dry before `limit` take part in the next round (rare: a kick and rejoin, or a newly
 * joined `joined` room reaching back to the room's creation).
 */
export async function latestVisibleEvents(
  hs: Homeserver,
  windows: VisibleWindow[],
  limit: number,
  filter?: EventFilterQuery,
): Promise<StoredEvent[][]> {
  const out = windows.map((): StoredEvent[] => []);
  const cursor = windows.map((w) => w.before);
  let todo = windows.map((_, i) => i);
  while (todo.length) {
    const asks: { i: number; win: RoomStreamWindow; want: number }[] = [];
    for (const i of todo) {
      const w = windows[i];
      const want = limit - out[i].length;
      if (want <= 0) continue;
      const floor = w.after ?? -1;
      if (!w.visible) {
        asks.push({ i, win: { roomId: w.roomId, before: cursor[i], after: w.after }, want });
        continue;
      }
      const r = w.visible.findLast((x) => x.lo < cursor[i]);
      if (!r || r.hi <= floor) continue;
      const before = r.hi >= MAX_STREAM ? cursor[i] : Math.min(cursor[i], r.hi + 1);
      asks.push({ i, win: { roomId: w.roomId, before, after: Math.max(floor, r.lo - 1) }, want });
    }
    if (asks.length === 0) break;
    const got = await hs.store.events.getLatestEventsPerRoom(
      asks.map((a) => a.win),
      Math.max(...asks.map((a) => a.want)),
      filter,
    );
    todo = [];
    asks.forEach((a, k) => {
      const evs = got[k].length > a.want ? got[k].slice(0, a.want) : got[k];
      out[a.i].push(...evs);
      const w = windows[a.i];
      // This range ran dry: go on below it, unless the window's own lower end was reached.
      const lowest = a.win.after ?? -1;
      if (evs.length < a.want && w.visible && lowest > (w.after ?? -1)) {
        cursor[a.i] = lowest + 1;
        todo.push(a.i);
      }
    });
  }
  return out;
}
