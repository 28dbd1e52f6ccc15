/**
 * Pagination tokens and RoomEventFilter parsing for /messages, /context and /members.
 *
 * A token names a point in the stream: `t<N>` is "just after the event at stream position N", so events
 * with stream <= N lie before it. /sync's tokens (`s<N>_...`) name the same kind of point, so a sync
 * `prev_batch`/`next_batch` can be passed to /messages as `from`.
 */
import { AmiError } from "../../core/errors.ts";
import type { JsonObject } from "../events/types.ts";
import { queryJson } from "../validate.ts";
import { parseSyncToken } from "./sync/token.ts";

export const topoToken = (stream: number): string => `t${Math.max(0, stream)}`;

/** Stream position named by a `t<N>` or sync `s<N>_<typing>` token; M_INVALID_PARAM otherwise. */
export function parseStreamToken(token: string, name = "from"): number {
  const m = /^t(\d{1,15})$/.exec(token);
  if (m) return Number(m[1]);
  try {
    return parseSyncToken(token).stream;
  } catch {
    throw new AmiError("M_INVALID_PARAM", `'${name}' is not a valid pagination token`);
  }
}

export interface RoomFilter {
  limit?: number;
  types?: string[];
  notTypes?: string[];
  senders?: string[];
  notSenders?: string[];
  containsUrl?: boolean;
  lazyLoadMembers: boolean;
}

function strings(f: JsonObject, key: string): string[] | undefined {
  const v = f[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new AmiError("M_INVALID_PARAM", `filter '${key}' must be an array of strings`);
  }
  return v;
}

/** The `filter` query parameter (a RoomEventFilter as JSON); an absent filter filters nothing. */
export function parseRoomFilter(q: URLSearchParams): RoomFilter {
  const raw = queryJson(q, "filter");
  if (raw === undefined || raw === null) return { lazyLoadMembers: false };
  if (typeof raw !== "object" || Array.isArray(raw))
    throw new AmiError("M_INVALID_PARAM", "'filter' must be a JSON object");
  const f = raw as JsonObject;
  const out: RoomFilter = {
    types: strings(f, "types"),
    notTypes: strings(f, "not_types"),
    senders: strings(f, "senders"),
    notSenders: strings(f, "not_senders"),
    lazyLoadMembers: f.lazy_load_members === true,
  };
  const limit = f.limit;
  if (limit !== undefined) {
    if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1)
      throw new AmiError("M_INVALID_PARAM", "filter 'limit' must be a positive integer");
    out.limit = limit;
  }
  if (f.contains_url !== undefined) {
    if (typeof f.contains_url !== "boolean")
      throw new AmiError("M_INVALID_PARAM", "filter 'contains_url' must be a boolean");
    out.containsUrl = f.contains_url;
  }
  return out;
}
