/**
 * Power levels (client-server spec `m.room.power_levels`, and rule 9 of the v10/v11 authorization
 * rules). Defaults follow the spec: ban/kick/redact 50, invite 0, state_default 50 (0 when there is
 * no power levels event at all), events_default 0, users_default 0; without a power levels event
 * the room creator has 100. From room version 12 the room's creators (the create event's sender and its
 * `content.additional_creators`) have an infinite power level (`Infinity` here), whatever power levels say.
 */
import { parseUserId } from "./ids.ts";
import { roomVersionRules } from "./room-versions.ts";
import type { CreateContent, EventContent, PowerLevelsContent } from "./types.ts";

export interface CreateEventLike {
  sender: string;
  content: CreateContent;
}

export type NamedLevel = "ban" | "kick" | "redact" | "invite";
const NAMED_DEFAULTS: Record<NamedLevel, number> = { ban: 50, kick: 50, redact: 50, invite: 0 };

const INT_KEYS = ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"] as const;

function intOr(value: unknown, fallback: number): number {
  return Number.isInteger(value) ? (value as number) : fallback;
}

/** The room creator: the create event's sender from v11 on, `content.creator` before. */
export function roomCreatorOf(createEvent: CreateEventLike | undefined): string | undefined {
  if (!createEvent) return undefined;
  const version = String(createEvent.content?.room_version ?? "1");
  const legacy = /^\d+$/.test(version) && Number(version) <= 10;
  return legacy && typeof createEvent.content?.creator === "string" ? createEvent.content.creator : createEvent.sender;
}

/** Room version 12+: does the room (by its create event's `room_version`) give its creators infinite power? */
export function hasPrivilegedCreators(createEvent: CreateEventLike | undefined): boolean {
  const v = createEvent?.content?.room_version;
  return typeof v === "string" && roomVersionRules(v)?.privilegedCreators === true;
}

/**
 * Room version 12's "room creators": the create event's sender plus `content.additional_creators` (its strings;
 * the auth rules reject a create event whose list is not all user IDs). Before v12: the one creator.
 */
export function roomCreatorsOf(createEvent: CreateEventLike | undefined): string[] {
  if (!createEvent) return [];
  if (!hasPrivilegedCreators(createEvent)) {
    const c = roomCreatorOf(createEvent);
    return c ? [c] : [];
  }
  const extra = createEvent.content?.additional_creators;
  const out = [createEvent.sender];
  if (Array.isArray(extra)) for (const u of extra) if (typeof u === "string" && !out.includes(u)) out.push(u);
  return out;
}

export function powerLevelOf(
  userId: string,
  powerLevels: PowerLevelsContent | undefined,
  createEvent: CreateEventLike | undefined,
): number {
  if (hasPrivilegedCreators(createEvent) && roomCreatorsOf(createEvent).includes(userId)) return Infinity;
  if (!powerLevels) return userId === roomCreatorOf(createEvent) ? 100 : 0;
  const users = powerLevels.users;
  if (users && typeof users === "object" && Object.hasOwn(users, userId)) {
    return intOr(users[userId], intOr(powerLevels.users_default, 0));
  }
  return intOr(powerLevels.users_default, 0);
}

/** The level for ban/kick/redact/invite. */
export function namedLevel(name: NamedLevel, powerLevels: PowerLevelsContent | undefined): number {
  return intOr(powerLevels?.[name], NAMED_DEFAULTS[name]);
}

/** The level needed to send an event of `type` (state or not). */
export function requiredLevelForEvent(
  type: string,
  isState: boolean,
  powerLevels: PowerLevelsContent | undefined,
): number {
  const events = powerLevels?.events;
  if (events && typeof events === "object" && Object.hasOwn(events, type) && Number.isInteger(events[type])) {
    return events[type];
  }
  if (isState) return intOr(powerLevels?.state_default, powerLevels ? 50 : 0);
  return intOr(powerLevels?.events_default, 0);
}

/** The level a notification type (e.g. "room" for @room) needs; default 50. */
export function notificationLevel(key: string, powerLevels: PowerLevelsContent | undefined): number {
  return intOr(powerLevels?.notifications?.[key], 50);
}

function isIntMap(x: unknown): x is Record<string, number> {
  return typeof x === "object" && x !== null && !Array.isArray(x) && Object.values(x).every(Number.isInteger);
}

/** Rule 9.1-9.3: the shape of a power levels event's content (v10+: integers only). */
export function validatePowerLevelsContent(content: EventContent): string | null {
  for (const k of INT_KEYS) {
    if (Object.hasOwn(content, k) && !Number.isInteger(content[k])) return `power levels '${k}' must be an integer`;
  }
  for (const k of ["events", "notifications"]) {
    if (Object.hasOwn(content, k) && !isIntMap(content[k])) return `power levels '${k}' must map to integers`;
  }
  if (Object.hasOwn(content, "users")) {
    if (!isIntMap(content.users)) return "power levels 'users' must map to integers";
    for (const u of Object.keys(content.users)) {
      if (!parseUserId(u)) return `power levels 'users' has an invalid user ID '${u}'`;
    }
  }
  return null;
}

function changedKeys(a: Record<string, number>, b: Record<string, number>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => a[k] !== b[k]);
}

/** A level map (events, notifications, users): rules 9.1-9.3 have checked its values are integers. */
function asMap(x: unknown): Record<string, number> {
  return typeof x === "object" && x !== null && !Array.isArray(x) ? (x as Record<string, number>) : {};
}

/** Rules 9.5-9.9: may `sender` (at `senderLevel`) change `current` into `next`? */
export function checkPowerLevelsChange(
  sender: string,
  senderLevel: number,
  current: PowerLevelsContent,
  next: PowerLevelsContent,
): string | null {
  for (const k of INT_KEYS) {
    const had = Object.hasOwn(current, k);
    const has = Object.hasOwn(next, k);
    if (!had && !has) continue;
    if (had && has && current[k] === next[k]) continue;
    // Number(): what `>` did on these (integers, by rules 9.1-9.3).
    if (had && Number(current[k]) > senderLevel) return `cannot change '${k}' from ${current[k]}: above your level`;
    if (has && Number(next[k]) > senderLevel) return `cannot set '${k}' to ${next[k]}: above your level`;
  }
  for (const prop of ["events", "notifications"]) {
    const cur = asMap(current[prop]);
    const nxt = asMap(next[prop]);
    for (const k of changedKeys(cur, nxt)) {
      if (Object.hasOwn(cur, k) && cur[k] > senderLevel) return `cannot change ${prop}['${k}']: above your level`;
      if (Object.hasOwn(nxt, k) && nxt[k] > senderLevel) return `cannot set ${prop}['${k}'] above your level`;
    }
  }
  const cur = asMap(current.users);
  const nxt = asMap(next.users);
  for (const u of changedKeys(cur, nxt)) {
    if (u !== sender && Object.hasOwn(cur, u) && cur[u] >= senderLevel) {
      return `cannot change the level of ${u}: not below yours`;
    }
    if (Object.hasOwn(nxt, u) && nxt[u] > senderLevel) return `cannot raise ${u} above your own level`;
  }
  return null;
}
