/**
 * Filters (spec: "Filtering", definitions/sync_filter.yaml): validation of filter JSON, storage via the store,
 * and the matching helpers /sync applies.
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import type { JsonObject } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import { parseBody } from "../validate.ts";

const strings = z.array(z.string());
const eventFilter = z
  .object({
    limit: z.number().int().min(1).optional(),
    types: strings.optional(),
    not_types: strings.optional(),
    senders: strings.optional(),
    not_senders: strings.optional(),
  })
  .loose();
export const roomEventFilter = eventFilter
  .extend({
    rooms: strings.optional(),
    not_rooms: strings.optional(),
    contains_url: z.boolean().optional(),
    lazy_load_members: z.boolean().optional(),
    include_redundant_members: z.boolean().optional(),
    unread_thread_notifications: z.boolean().optional(),
  })
  .loose();

export const filterSchema = z
  .object({
    event_fields: strings.optional(),
    event_format: z.enum(["client", "federation"]).optional(),
    presence: eventFilter.optional(),
    account_data: eventFilter.optional(),
    room: z
      .object({
        rooms: strings.optional(),
        not_rooms: strings.optional(),
        include_leave: z.boolean().optional(),
        ephemeral: roomEventFilter.optional(),
        state: roomEventFilter.optional(),
        timeline: roomEventFilter.optional(),
        account_data: roomEventFilter.optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

export type Filter = z.infer<typeof filterSchema>;
export type EventFilter = z.infer<typeof eventFilter>;
export type RoomEventFilter = z.infer<typeof roomEventFilter>;

export const DEFAULT_TIMELINE_LIMIT = 10;
/** Upper bound on a timeline limit: bigger asks are served at this size (the spec asks servers to cap). */
export const MAX_TIMELINE_LIMIT = 1000;

/** Validate filter JSON (POST /filter body or inline /sync filter): wrong types -> M_BAD_JSON naming the key. */
export function validateFilter(body: unknown): Filter {
  return parseBody(filterSchema, body);
}

export async function createFilter(hs: Homeserver, userId: string, body: unknown): Promise<string> {
  const f = validateFilter(body);
  return hs.store.accountData.createFilter(userId, f);
}

export async function getFilter(hs: Homeserver, userId: string, filterId: string): Promise<Filter> {
  const f = /^\d{1,15}$/.test(filterId) ? await hs.store.accountData.getFilter(userId, filterId) : null;
  if (!f) throw new AmiError("M_NOT_FOUND", "No such filter");
  return f as Filter;
}

/** The /sync `filter` parameter: a filter ID, or inline JSON when it starts with "{". */
export async function resolveSyncFilter(hs: Homeserver, userId: string, param: string | null): Promise<Filter> {
  if (param === null || param === "") return {};
  if (param.startsWith("{")) {
    let v: unknown;
    try {
      v = JSON.parse(param);
    } catch {
      throw new AmiError("M_NOT_JSON", "'filter' is not valid JSON");
    }
    if (v === null || typeof v !== "object" || Array.isArray(v))
      throw new AmiError("M_BAD_JSON", "'filter' must be a JSON object");
    return validateFilter(v);
  }
  const f = /^\d{1,15}$/.test(param) ? await hs.store.accountData.getFilter(userId, param) : null;
  if (!f) throw new AmiError("M_INVALID_PARAM", `Unknown filter '${param.slice(0, 64)}'`);
  return f as Filter;
}

/** `*` matches any sequence of characters (spec: filter `types`). */
export function typeMatches(patterns: readonly string[], type: string): boolean {
  for (const p of patterns) {
    if (p === type || p === "*") return true;
    if (p.includes("*") && globToRegExp(p).test(type)) return true;
  }
  return false;
}

const globCache = new Map<string, RegExp>();
function globToRegExp(p: string): RegExp {
  let re = globCache.get(p);
  if (!re) {
    re = new RegExp(
      `^${p
        .split("*")
        .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*")}$`,
      "s",
    );
    if (globCache.size > 1000) globCache.clear();
    globCache.set(p, re);
  }
  return re;
}

/** EventFilter semantics on a (type, sender) pair: not_* win over the positive lists. */
export function eventAllowed(f: EventFilter | undefined, type: string, sender: string | undefined): boolean {
  if (!f) return true;
  if (f.not_types && typeMatches(f.not_types, type)) return false;
  if (f.types && !typeMatches(f.types, type)) return false;
  if (sender !== undefined) {
    if (f.not_senders?.includes(sender)) return false;
    if (f.senders && !f.senders.includes(sender)) return false;
  }
  return true;
}

/** RoomFilter / RoomEventFilter rooms + not_rooms. */
export function roomAllowed(f: { rooms?: string[]; not_rooms?: string[] } | undefined, roomId: string): boolean {
  if (!f) return true;
  if (f.not_rooms?.includes(roomId)) return false;
  if (f.rooms && !f.rooms.includes(roomId)) return false;
  return true;
}

/** Apply a filter's `limit` to an already filtered list, keeping the newest entries. */
export function limitNewest<T>(items: T[], f: EventFilter | undefined): T[] {
  return f?.limit !== undefined && items.length > f.limit ? items.slice(items.length - f.limit) : items;
}

/** Split a dot-separated property path; `\.` escapes a literal dot (spec appendix: dot-separated paths). */
function splitPath(path: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (c === "\\" && (path[i + 1] === "." || path[i + 1] === "\\")) {
      cur += path[++i];
    } else if (c === ".") {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** `event_fields`: keep only the listed paths of an event (an absent list keeps everything). */
export function pickFields<T extends object>(ev: T, fields: string[] | undefined): Partial<T> {
  if (!fields) return ev;
  const out: JsonObject = {};
  for (const f of fields) {
    const path = splitPath(f);
    let src: unknown = ev;
    for (const k of path) {
      src = src !== null && typeof src === "object" && Object.hasOwn(src, k) ? (src as JsonObject)[k] : undefined;
      if (src === undefined) break;
    }
    if (src === undefined) continue;
    let dst = out;
    for (let i = 0; i < path.length - 1; i++) {
      const k = path[i];
      if (dst[k] === undefined || typeof dst[k] !== "object") dst[k] = {};
      dst = dst[k] as JsonObject;
    }
    dst[path[path.length - 1]] = src;
  }
  return out as Partial<T>;
}
