/**
 * Push rules (spec: "Push Notifications" module, predefined rules). The user's ruleset lives in global account
 * data `m.push_rules` as a full ruleset; reading it always re-merges with the current server defaults, so only the
 * `enabled`/`actions` of default rules and the user's own rules are taken from storage.
 */
import { AmiError } from "../../core/errors.ts";
import { field, isJsonObject, type JsonObject } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";

export const RULE_KINDS = ["override", "content", "room", "sender", "underride"] as const;
export type RuleKind = (typeof RULE_KINDS)[number];
export type PushRule = {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  actions: unknown[];
  /** As the user stored them: evaluation checks every field it reads. */
  conditions?: JsonObject[];
  pattern?: string;
};
export type Ruleset = Record<RuleKind, PushRule[]>;

export const PUSH_RULES_TYPE = "m.push_rules";

const notifyHighlight = ["notify", { set_tweak: "sound", value: "default" }, { set_tweak: "highlight" }];
const notifySound = ["notify", { set_tweak: "sound", value: "default" }, { set_tweak: "highlight", value: false }];
const notifyQuiet = ["notify", { set_tweak: "highlight", value: false }];
const match = (key: string, pattern: string) => ({ kind: "event_match", key, pattern });
const rule = (rule_id: string, conditions: JsonObject[], actions: unknown[], enabled = true): PushRule => ({
  rule_id,
  default: true,
  enabled,
  conditions,
  actions,
});

/** The predefined rules, in the spec's order. */
export function defaultRuleset(userId: string): Ruleset {
  const localpart = userId.slice(1).split(":")[0];
  return {
    override: [
      rule(".m.rule.master", [], [], false),
      rule(".m.rule.suppress_notices", [match("content.msgtype", "m.notice")], []),
      rule(
        ".m.rule.invite_for_me",
        [match("type", "m.room.member"), match("content.membership", "invite"), match("state_key", userId)],
        notifySound,
      ),
      rule(".m.rule.member_event", [match("type", "m.room.member")], []),
      rule(
        ".m.rule.is_user_mention",
        [{ kind: "event_property_contains", key: "content.m\\.mentions.user_ids", value: userId }],
        notifyHighlight,
      ),
      rule(".m.rule.contains_display_name", [{ kind: "contains_display_name" }], notifyHighlight),
      rule(
        ".m.rule.is_room_mention",
        [
          { kind: "event_property_is", key: "content.m\\.mentions.room", value: true },
          { kind: "sender_notification_permission", key: "room" },
        ],
        ["notify", { set_tweak: "highlight" }],
      ),
      rule(
        ".m.rule.roomnotif",
        [{ kind: "sender_notification_permission", key: "room" }, match("content.body", "@room")],
        ["notify", { set_tweak: "highlight" }],
      ),
      rule(
        ".m.rule.tombstone",
        [match("type", "m.room.tombstone"), match("state_key", "")],
        ["notify", { set_tweak: "highlight" }],
      ),
      rule(".m.rule.reaction", [match("type", "m.reaction")], []),
      rule(".m.rule.room.server_acl", [match("type", "m.room.server_acl"), match("state_key", "")], []),
      rule(
        ".m.rule.suppress_edits",
        [{ kind: "event_property_is", key: "content.m\\.relates_to.rel_type", value: "m.replace" }],
        [],
      ),
    ],
    content: [
      {
        rule_id: ".m.rule.contains_user_name",
        default: true,
        enabled: true,
        pattern: localpart,
        actions: notifyHighlight,
      },
    ],
    room: [],
    sender: [],
    underride: [
      rule(
        ".m.rule.call",
        [match("type", "m.call.invite")],
        ["notify", { set_tweak: "sound", value: "ring" }, { set_tweak: "highlight", value: false }],
      ),
      rule(
        ".m.rule.encrypted_room_one_to_one",
        [{ kind: "room_member_count", is: "2" }, match("type", "m.room.encrypted")],
        notifySound,
      ),
      rule(
        ".m.rule.room_one_to_one",
        [{ kind: "room_member_count", is: "2" }, match("type", "m.room.message")],
        notifySound,
      ),
      rule(".m.rule.message", [match("type", "m.room.message")], notifyQuiet),
      rule(".m.rule.encrypted", [match("type", "m.room.encrypted")], notifyQuiet),
    ],
  };
}

/** Merge stored account data content with the current defaults (see file comment). */
export function mergeRuleset(userId: string, stored: JsonObject | null | undefined): Ruleset {
  const defaults = defaultRuleset(userId);
  const g = stored?.global;
  const out = {} as Ruleset;
  for (const kind of RULE_KINDS) {
    const list = field(g, kind);
    const saved = Array.isArray(list)
      ? list.filter((r): r is JsonObject & { rule_id: string } => isJsonObject(r) && typeof r.rule_id === "string")
      : [];
    const byId = new Map(saved.map((r) => [r.rule_id, r]));
    const defs = defaults[kind].map((d) => {
      const s = byId.get(d.rule_id);
      if (!s) return d;
      return {
        ...d,
        enabled: typeof s.enabled === "boolean" ? s.enabled : d.enabled,
        actions: Array.isArray(s.actions) ? s.actions : d.actions,
      };
    });
    const user: PushRule[] = saved
      .filter((r) => !r.rule_id.startsWith("."))
      // As stored: PUT .../pushrules checked actions and conditions.
      .map((r) => ({ ...r, default: false, enabled: r.enabled !== false }) as PushRule);
    // User rules outrank the defaults of their kind, except the master switch which stays first.
    out[kind] =
      kind === "override" && defs[0]?.rule_id === ".m.rule.master"
        ? [defs[0], ...user, ...defs.slice(1)]
        : [...user, ...defs];
  }
  return out;
}

export async function getRuleset(hs: Homeserver, userId: string): Promise<Ruleset> {
  const row = await hs.store.accountData.getAccountData(userId, null, PUSH_RULES_TYPE);
  return mergeRuleset(userId, row?.content);
}

/** The account data event clients see for m.push_rules. */
export const pushRulesContent = (rules: Ruleset) => ({ global: rules });

/** Read-modify-write the ruleset inside the stream writer, so concurrent changes serialise. */
export async function updateRuleset(hs: Homeserver, userId: string, change: (rules: Ruleset) => void): Promise<void> {
  await hs.stream.write(
    async (stream) => {
      const row = await hs.store.accountData.getAccountData(userId, null, PUSH_RULES_TYPE);
      const rules = mergeRuleset(userId, row?.content);
      change(rules);
      await hs.store.accountData.setAccountData({
        userId,
        roomId: null,
        type: PUSH_RULES_TYPE,
        content: pushRulesContent(rules),
        stream,
      });
    },
    { kind: "users", userIds: [userId] },
  );
}

export function findRule(rules: Ruleset, kind: string, ruleId: string): PushRule {
  const list = (RULE_KINDS as readonly string[]).includes(kind) ? rules[kind as RuleKind] : undefined;
  if (!list) throw new AmiError("M_INVALID_PARAM", `Unknown push rule kind '${kind}'`);
  const r = list.find((x) => x.rule_id === ruleId);
  if (!r) throw new AmiError("M_NOT_FOUND", "Push rule not found");
  return r;
}

/** How a message event notifies the user: the minimal evaluation /sync needs for unread counts. */
export interface NotifyContext {
  userId: string;
  displayname: string | null;
  memberCount: number;
  /** May the sender notify the whole room (power level >= notifications.room)? */
  senderCanNotifyRoom: boolean;
}

/** The event as push rules see it (a PDU with room_id, sender and type set). */
export type PushEvent = { room_id?: unknown; sender?: unknown; type?: unknown; content?: unknown };

/** The first matching rule's verdict (used by /sync unread counts and push delivery), with its actions. */
export function evaluate(
  rules: Ruleset,
  ev: PushEvent,
  ctx: NotifyContext,
): { notify: boolean; highlight: boolean; actions: unknown[] } {
  for (const kind of RULE_KINDS) {
    for (const r of rules[kind]) {
      if (!r.enabled || !ruleMatches(kind, r, ev, ctx)) continue;
      const notify = r.actions.includes("notify");
      const highlight = r.actions.some((a) => field(a, "set_tweak") === "highlight" && field(a, "value") !== false);
      return { notify, highlight: notify && highlight, actions: r.actions };
    }
  }
  return { notify: false, highlight: false, actions: [] };
}

/** The tweaks of a rule's actions ({set_tweak, value} -> {name: value}; highlight without a value is true). */
export function tweaksOf(actions: unknown[]): JsonObject {
  const out: JsonObject = {};
  for (const a of actions) {
    const name = field(a, "set_tweak");
    if (typeof name !== "string") continue;
    const v = field(a, "value");
    out[name] = v === undefined && name === "highlight" ? true : v;
  }
  return out;
}

function ruleMatches(kind: RuleKind, r: PushRule, ev: PushEvent, ctx: NotifyContext): boolean {
  if (kind === "content") return typeof r.pattern === "string" && globMatch(r.pattern, field(ev.content, "body"), true);
  if (kind === "room") return ev.room_id === r.rule_id;
  if (kind === "sender") return ev.sender === r.rule_id;
  return (r.conditions ?? []).every((c) => conditionMatches(c, ev, ctx));
}

function conditionMatches(c: JsonObject, ev: PushEvent, ctx: NotifyContext): boolean {
  switch (c.kind) {
    case "event_match": {
      const v = property(ev, c.key);
      return (
        typeof v === "string" && typeof c.pattern === "string" && globMatch(c.pattern, v, c.key === "content.body")
      );
    }
    case "event_property_is":
      return property(ev, c.key) === c.value;
    case "event_property_contains": {
      const v = property(ev, c.key);
      return Array.isArray(v) && v.includes(c.value);
    }
    case "contains_display_name":
      return !!ctx.displayname && globMatch(ctx.displayname, field(ev.content, "body"), true);
    case "room_member_count":
      return memberCountMatches(String(c.is ?? ""), ctx.memberCount);
    case "sender_notification_permission":
      return ctx.senderCanNotifyRoom;
    default:
      return false; // unknown conditions never match (spec)
  }
}

function memberCountMatches(is: string, n: number): boolean {
  const m = /^(==|<=|>=|<|>)?(\d+)$/.exec(is);
  if (!m) return false;
  const x = Number(m[2]);
  switch (m[1]) {
    case "<":
      return n < x;
    case ">":
      return n > x;
    case "<=":
      return n <= x;
    case ">=":
      return n >= x;
    default:
      return n === x;
  }
}

/** Dot-separated path into an event; `\.` is a literal dot. Split paths are cached (few distinct keys). */
const pathCache = new Map<string, string[]>();
function property(ev: PushEvent, key: unknown): unknown {
  if (typeof key !== "string") return undefined;
  let parts = pathCache.get(key);
  if (!parts) {
    parts = key.split(/(?<!\\)\./).map((p) => p.replace(/\\\./g, "."));
    if (pathCache.size > 1000) pathCache.clear();
    pathCache.set(key, parts);
  }
  let cur: unknown = ev;
  for (const part of parts) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as JsonObject)[part];
  }
  return cur;
}

/** Glob with * and ?, case-insensitive; on content.body it matches whole words (spec: event_match on body). */
const globCache = new Map<string, RegExp>();
const GLOB_CACHE_MAX = 10_000;
function globMatch(pattern: string, value: unknown, words: boolean): boolean {
  if (typeof value !== "string") return false;
  const k = `${words ? "w" : "e"}${pattern}`;
  let re = globCache.get(k);
  if (!re) {
    const body = pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*?")
      .replace(/\?/g, ".");
    re = words ? new RegExp(`(^|\\W)${body}(\\W|$)`, "iu") : new RegExp(`^${body}$`, "isu");
    // Room for every user's own name pattern on a busy server: a wake-up evaluates all members' rules in turn,
    // and a cache smaller than that would be emptied and recompiled on every one.
    if (globCache.size >= GLOB_CACHE_MAX) globCache.delete(globCache.keys().next().value as string);
    globCache.set(k, re);
  }
  return re.test(value);
}
