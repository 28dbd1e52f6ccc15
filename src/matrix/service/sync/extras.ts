/** /sync: stripped state of invites and knocks, account data, and presence. */

import type { BasicEvent, EventContent, StrippedStateEvent } from "../../events/types.ts";
import type { AccountDataRow, MembershipRow, StoredEvent } from "../../store/types.ts";
import { eventAllowed, limitNewest, pickFields } from "../filters.ts";
import { mergeRuleset, PUSH_RULES_TYPE, pushRulesContent } from "../push-rules.ts";
import type { SyncCtx } from "./context.ts";
import type { SyncBasicEvent } from "./types.ts";

/** State shown to invitees and knockers (spec: "Stripped state"; the recommended set plus the topic). */
const STRIPPED_TYPES = [
  "m.room.create",
  "m.room.join_rules",
  "m.room.name",
  "m.room.avatar",
  "m.room.canonical_alias",
  "m.room.encryption",
  "m.room.topic",
];

const stripped = (e: StoredEvent) => ({
  type: e.type,
  state_key: e.stateKey ?? "",
  sender: e.sender,
  content: e.pdu.content ?? {},
});

/**
 * Stripped state for invites and knocks (the user's invite/knock membership rows), in the order given. An
 * invite carrying `unsigned.invite_room_state` (federated invites), or a knock `unsigned.knock_room_state` (federated
 * knocks, federation/knock-out.ts), is used as given. One store call per step
 * for all rooms.
 */
export async function strippedStates(ctx: SyncCtx, rows: MembershipRow[]): Promise<StrippedStateEvent[][]> {
  if (rows.length === 0) return [];
  const { store } = ctx.hs;
  const byId = new Map((await store.events.getEvents(rows.map((m) => m.eventId))).map((e) => [e.eventId, e]));
  const members = rows.map((m) => byId.get(m.eventId) ?? null);
  const given = members.map((e) => e?.pdu.unsigned?.invite_room_state ?? e?.pdu.unsigned?.knock_room_state);
  const own = rows.flatMap((m, i) =>
    Array.isArray(given[i]) ? [] : [{ i, roomId: m.roomId, stream: members[i]?.stream ?? ctx.upto }],
  );
  // The inviter's own membership lets clients show who invited them.
  const inviters = own.flatMap(({ i, roomId }) => {
    const member = members[i];
    return member && member.sender !== ctx.userId ? [{ i, roomId, stream: member.stream }] : [];
  });
  const [states, inviterStates] = await Promise.all([
    store.events.getStatesAt(own, STRIPPED_TYPES),
    store.events.getStatesAt(inviters, ["m.room.member"]),
  ]);
  const out: StrippedStateEvent[][] = rows.map(() => []);
  rows.forEach((_, i) => {
    const g = given[i];
    if (Array.isArray(g)) out[i].push(...g.filter((e) => e && typeof e === "object" && e.type !== "m.room.member"));
  });
  own.forEach(({ i }, j) => {
    for (const e of states[j]) out[i].push(stripped(e));
  });
  inviters.forEach(({ i }, j) => {
    const ev = inviterStates[j].find((e) => e.stateKey === members[i]?.sender);
    if (ev) out[i].push(stripped(ev));
  });
  members.forEach((member, i) => {
    if (member) out[i].push(stripped(member));
  });
  return out;
}

/** Internal account data types never reach clients. */
const isInternal = (type: string) => type.startsWith("ami.");

export interface AccountDataSplit {
  global: SyncBasicEvent[];
  rooms: Map<string, SyncBasicEvent[]>;
}

/** Account data changed since the token (all of it on an initial sync), split into global and per room. */
export async function accountData(ctx: SyncCtx): Promise<AccountDataSplit> {
  const rows = (await ctx.hs.store.accountData.getAccountDataSince(ctx.userId, ctx.since?.stream ?? 0)).filter(
    (r) => r.stream <= ctx.upto && !isInternal(r.type),
  );
  rows.sort((a, b) => a.stream - b.stream);
  const globalFilter = ctx.filter.account_data;
  const roomFilter = ctx.filter.room?.account_data;
  const global: SyncBasicEvent[] = [];
  const rooms = new Map<string, SyncBasicEvent[]>();
  let sawPushRules = false;
  for (const r of rows) {
    if (r.roomId === null) {
      if (r.type === PUSH_RULES_TYPE) sawPushRules = true;
      if (eventAllowed(globalFilter, r.type, undefined)) global.push(toEvent(ctx, r));
    } else if (
      eventAllowed(roomFilter, r.type, undefined) &&
      !roomFilter?.not_rooms?.includes(r.roomId) &&
      (!roomFilter?.rooms || roomFilter.rooms.includes(r.roomId))
    ) {
      const list = rooms.get(r.roomId);
      if (list) list.push(toEvent(ctx, r));
      else rooms.set(r.roomId, [toEvent(ctx, r)]);
    }
  }
  // Clients learn their push rules from the initial sync (Synapse does the same): send the defaults if unset.
  if (!ctx.since && !sawPushRules && eventAllowed(globalFilter, PUSH_RULES_TYPE, undefined)) {
    global.push(withFields(ctx, { type: PUSH_RULES_TYPE, content: pushRulesContent(mergeRuleset(ctx.userId, null)) }));
  }
  return {
    global: limitNewest(global, globalFilter),
    rooms: roomFilter?.limit ? new Map([...rooms].map(([k, v]) => [k, limitNewest(v, roomFilter)])) : rooms,
  };
}

function toEvent(ctx: SyncCtx, r: AccountDataRow): SyncBasicEvent {
  const content =
    r.type === PUSH_RULES_TYPE && r.roomId === null ? pushRulesContent(mergeRuleset(ctx.userId, r.content)) : r.content;
  return withFields(ctx, { type: r.type, content });
}

const withFields = (ctx: SyncCtx, e: BasicEvent): SyncBasicEvent =>
  ctx.filter.event_fields ? pickFields(e, ctx.filter.event_fields) : e;

/** A user counts as currently active for this long after their last activity. */
export const ACTIVE_WINDOW_MS = 60_000;

/** m.presence events of users sharing a room with the syncing user (and the user's own), changed since the token. */
export async function presenceEvents(ctx: SyncCtx, userIds: Set<string>): Promise<SyncBasicEvent[]> {
  if (!ctx.hs.config.presence.enabled || userIds.size === 0) return [];
  const f = ctx.filter.presence;
  if (f && !eventAllowed(f, "m.presence", undefined) && f.types) return [];
  const rows = await ctx.hs.store.ephemeral.getPresenceSince([...userIds], ctx.since?.stream ?? 0);
  const out: SyncBasicEvent[] = [];
  for (const p of rows.sort((a, b) => a.stream - b.stream)) {
    if (p.stream > ctx.upto || !eventAllowed(f, "m.presence", p.userId)) continue;
    const ago = Math.max(0, ctx.now - p.lastActiveTs);
    const content: EventContent = {
      presence: p.presence,
      last_active_ago: ago,
      currently_active: p.presence === "online" && ago < ACTIVE_WINDOW_MS,
    };
    if (p.statusMsg !== null) content.status_msg = p.statusMsg;
    out.push(withFields(ctx, { type: "m.presence", sender: p.userId, content }));
  }
  return limitNewest(out, f);
}
