/** Shared state of one /sync computation and the small in-memory caches /sync keeps between requests. */
import type { Homeserver } from "../../hs.ts";
import type { MembershipRow, RoomAt, StoredEvent } from "../../store/types.ts";
import { DEFAULT_TIMELINE_LIMIT, type Filter, MAX_TIMELINE_LIMIT } from "../filters.ts";
import { mergeRuleset, PUSH_RULES_TYPE, type Ruleset } from "../push-rules.ts";
import type { Requester } from "../requester.ts";
import type { SyncToken } from "./token.ts";

export interface SyncCtx {
  hs: Homeserver;
  requester: Requester;
  userId: string;
  /** null on an initial sync. */
  since: SyncToken | null;
  /** Snapshot: every row with stream <= upto is visible to this sync, nothing later. */
  upto: number;
  typingSerial: number;
  /** The typing serial to diff against: -1 = deliver every room's current typing set. */
  typingSince: number;
  filter: Filter;
  fullState: boolean;
  lazyMembers: boolean;
  includeRedundantMembers: boolean;
  timelineLimit: number;
  now: number;
  /** Lazy-loading: member event IDs this device already has, per room (undefined when not lazy loading). */
  sentMembers: Map<string, Map<string, string>> | undefined;
  /** Per-request memo of room members. */
  members: Map<string, MembershipRow[]>;
  rules?: Promise<{ rules: Ruleset; stamp: number }>;
  displayname?: Promise<string | null>;
  /**
   * Reads shared by every sync computed at the same snapshot (the WebSocket hub's wake-up: many connections of
   * one room): the member state of a room at a stream, by `roomId|stream`. Absent for a lone /sync.
   */
  shared?: Map<string, Promise<StoredEvent[]>>;
}

/** What one sync is computed at: the client's since token and filter, and the server's stream positions. */
export interface Snapshot {
  since: SyncToken | null;
  filter: Filter;
  fullState: boolean;
  upto: number;
  typingSerial: number;
  /** Reads shared with the other syncs of this snapshot (SyncCtx.shared). */
  shared?: Map<string, Promise<StoredEvent[]>>;
}

export function newSyncCtx(hs: Homeserver, requester: Requester, p: Snapshot): SyncCtx {
  const tl = p.filter.room?.timeline;
  const lazy = p.filter.room?.state?.lazy_load_members === true;
  const since = p.since;
  const ctx: SyncCtx = {
    hs,
    requester,
    userId: requester.userId,
    since,
    upto: p.upto,
    typingSerial: p.typingSerial,
    // A typing serial from before a restart (larger than ours) cannot be diffed: resend every typing set.
    typingSince: since && since.typing <= p.typingSerial ? since.typing : -1,
    filter: p.filter,
    fullState: p.fullState,
    lazyMembers: lazy,
    includeRedundantMembers: lazy && p.filter.room?.state?.include_redundant_members === true,
    timelineLimit: Math.min(tl?.limit ?? DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT),
    now: Date.now(),
    sentMembers: undefined,
    members: new Map(),
    shared: p.shared,
  };
  if (lazy) ctx.sentMembers = sentMembersFor(hs, requester, since);
  return ctx;
}

/** The user's push rules and the stream of their last change (cached counts are only valid for one version). */
export function pushRulesWithStamp(ctx: SyncCtx): Promise<{ rules: Ruleset; stamp: number }> {
  ctx.rules ??= ctx.hs.store.accountData
    .getAccountData(ctx.userId, null, PUSH_RULES_TYPE)
    .then((row) => ({ rules: mergeRuleset(ctx.userId, row?.content), stamp: row?.stream ?? 0 }));
  return ctx.rules;
}

export async function pushRules(ctx: SyncCtx): Promise<Ruleset> {
  return (await pushRulesWithStamp(ctx)).rules;
}

export function ownDisplayname(ctx: SyncCtx): Promise<string | null> {
  ctx.displayname ??= ctx.hs.store.accounts.getUser(ctx.userId).then((u) => u?.displayname ?? null);
  return ctx.displayname;
}

// ---- room members, cached across requests while the room's newest event is unchanged -------------------------
interface MemberCacheEntry {
  maxStream: number;
  rows: MembershipRow[];
}
const memberCaches = new WeakMap<Homeserver, Map<string, MemberCacheEntry>>();

function memberCache(hs: Homeserver): Map<string, MemberCacheEntry> {
  let cache = memberCaches.get(hs);
  if (!cache) {
    cache = new Map();
    memberCaches.set(hs, cache);
  }
  return cache;
}

/**
 * Load the members of many rooms into this request's memo: cache hits cost nothing, the misses are one store
 * call together. `maxStreams` holds each room's newest event stream (from getRoomMaxStreams).
 */
export async function prefetchMembers(
  ctx: SyncCtx,
  roomIds: Iterable<string>,
  maxStreams: Map<string, number>,
): Promise<void> {
  const cache = memberCache(ctx.hs);
  const misses: string[] = [];
  for (const roomId of roomIds) {
    if (ctx.members.has(roomId)) continue;
    const hit = cache.get(roomId);
    const maxStream = maxStreams.get(roomId);
    if (hit && maxStream !== undefined && hit.maxStream === maxStream) ctx.members.set(roomId, hit.rows);
    else misses.push(roomId);
  }
  if (misses.length === 0) return;
  const loaded = await ctx.hs.store.events.getMembersOfRooms(misses);
  for (const [roomId, rows] of loaded) {
    if (ctx.members.has(roomId)) continue;
    const maxStream = maxStreams.get(roomId);
    if (maxStream !== undefined) {
      if (cache.size > 20_000) cache.clear();
      cache.set(roomId, { maxStream, rows });
    }
    ctx.members.set(roomId, rows);
  }
}

/** Current membership rows of a room. `maxStream` is the room's newest event stream (from getRoomMaxStreams). */
export async function roomMembers(
  ctx: SyncCtx,
  roomId: string,
  maxStream: number | undefined,
): Promise<MembershipRow[]> {
  const memo = ctx.members.get(roomId);
  if (memo) return memo;
  const cache = memberCache(ctx.hs);
  const hit = cache.get(roomId);
  let rows: MembershipRow[];
  if (hit && maxStream !== undefined && hit.maxStream === maxStream) rows = hit.rows;
  else {
    rows = await ctx.hs.store.events.getMembers(roomId);
    if (maxStream !== undefined) {
      if (cache.size > 20_000) cache.clear();
      cache.set(roomId, { maxStream, rows });
    }
  }
  ctx.members.set(roomId, rows);
  return rows;
}

// ---- lazy-loading: which member events a device already has, as of each recent next_batch ---------------------
// Keyed by token rather than by device alone: a response the client never received must not count as sent.
const MAX_DEVICES = 2000;
const TOKENS_PER_DEVICE = 3;
type Sent = Map<string, Map<string, string>>;
const sentCaches = new WeakMap<Homeserver, Map<string, Map<string, Sent>>>();

function deviceKey(r: Requester): string {
  return `${r.userId}|${r.deviceId}`;
}

/** A copy (outer map only) of what was sent up to `since`; an unknown token means nothing is known as sent. */
function sentMembersFor(hs: Homeserver, r: Requester, since: SyncToken | null): Sent {
  const byToken = since ? sentCaches.get(hs)?.get(deviceKey(r)) : undefined;
  const base = since && byToken?.get(formatSyncTokenKey(since));
  return base ? new Map(base) : new Map();
}

/** Record a member event as delivered to this device (copy-on-write of the room's inner map). */
export function markMemberSent(ctx: SyncCtx, roomId: string, userId: string, eventId: string): void {
  const sent = ctx.sentMembers;
  if (!sent) return;
  const cur = sent.get(roomId);
  if (cur?.get(userId) === eventId) return;
  const next = new Map(cur);
  next.set(userId, eventId);
  sent.set(roomId, next);
}

export function alreadySent(ctx: SyncCtx, roomId: string, userId: string, eventId: string): boolean {
  return !ctx.includeRedundantMembers && ctx.sentMembers?.get(roomId)?.get(userId) === eventId;
}

/** Remember what this response delivered, under its next_batch. */
export function saveSentMembers(ctx: SyncCtx, next: SyncToken): void {
  if (!ctx.sentMembers) return;
  const all = sentCaches.get(ctx.hs) ?? new Map<string, Map<string, Sent>>();
  sentCaches.set(ctx.hs, all);
  const key = deviceKey(ctx.requester);
  const byToken = all.get(key) ?? new Map<string, Sent>();
  all.delete(key);
  all.set(key, byToken);
  byToken.set(formatSyncTokenKey(next), ctx.sentMembers);
  while (byToken.size > TOKENS_PER_DEVICE) byToken.delete(byToken.keys().next().value as string);
  if (all.size > MAX_DEVICES) all.delete(all.keys().next().value as string);
}

const formatSyncTokenKey = (t: SyncToken) => `${t.stream}_${t.typing}`;

/** Members of many rooms through the shared member cache, outside any one sync (the WebSocket hub's wake-ups). */
export async function loadMembers(
  hs: Homeserver,
  roomIds: string[],
  maxStreams: Map<string, number>,
): Promise<Map<string, MembershipRow[]>> {
  const ctx = { hs, members: new Map<string, MembershipRow[]>() } as SyncCtx;
  await prefetchMembers(ctx, roomIds, maxStreams);
  return ctx.members;
}

/**
 * The m.room.member state of each room at each point (getStatesAt), through the snapshot's shared reads when
 * there are some: state at a stream is the same for every connection, so a wake-up reads it once.
 */
export async function memberStatesAt(ctx: SyncCtx, points: RoomAt[]): Promise<StoredEvent[][]> {
  const shared = ctx.shared;
  if (!shared) return ctx.hs.store.events.getStatesAt(points, ["m.room.member"]);
  const key = (p: RoomAt) => `${p.roomId}|${p.stream}`;
  const misses = [...new Map(points.filter((p) => !shared.has(key(p))).map((p) => [key(p), p])).values()];
  if (misses.length) {
    const loading = ctx.hs.store.events.getStatesAt(misses, ["m.room.member"]);
    misses.forEach((p, i) => {
      shared.set(
        key(p),
        loading.then((all) => all[i]),
      );
    });
    // A failed read must not stay shared: the next sync of the snapshot tries again.
    loading.catch(() => {
      for (const p of misses) shared.delete(key(p));
    });
  }
  return Promise.all(points.map((p) => shared.get(key(p))!));
}
