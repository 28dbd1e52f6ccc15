/**
 * The redaction algorithm (spec rooms/v9 "Redactions", used by v10, and rooms/v11 "Redactions", unchanged in v12).
 * It also defines what event hashes and signatures cover, so it must match other servers exactly.
 * Older numeric versions are handled too because the spec's signing test vectors use them.
 */
import { AmiError } from "../../core/errors.ts";
import { isJsonObject, type JsonObject } from "./types.ts";

const TOP_LEVEL_V1 = [
  "event_id",
  "type",
  "room_id",
  "sender",
  "state_key",
  "content",
  "hashes",
  "signatures",
  "depth",
  "prev_events",
  "prev_state",
  "auth_events",
  "origin",
  "origin_server_ts",
  "membership",
];
// v11 stops protecting origin, membership and prev_state.
const TOP_LEVEL_V11 = TOP_LEVEL_V1.filter((k) => k !== "origin" && k !== "membership" && k !== "prev_state");

const PL_KEYS = ["ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"];

function versionNumber(roomVersion: string): number {
  const n = /^(?:[1-9]|1[0-2])$/.test(roomVersion) ? Number(roomVersion) : Number.NaN;
  if (Number.isNaN(n)) {
    throw new AmiError("M_UNSUPPORTED_ROOM_VERSION", `No redaction rules for room version '${roomVersion}'`);
  }
  return n;
}

/** Which `content` keys survive redaction for `type`; "all" for v11's m.room.create. */
function keptContentKeys(type: string, v: number): string[] | "all" {
  switch (type) {
    case "m.room.member":
      return v >= 9 ? ["membership", "join_authorised_via_users_server"] : ["membership"];
    case "m.room.create":
      return v >= 11 ? "all" : ["creator"];
    case "m.room.join_rules":
      return v >= 8 ? ["join_rule", "allow"] : ["join_rule"];
    case "m.room.power_levels":
      return v >= 11 ? [...PL_KEYS, "invite"] : PL_KEYS;
    case "m.room.aliases":
      return v <= 5 ? ["aliases"] : [];
    case "m.room.history_visibility":
      return ["history_visibility"];
    case "m.room.redaction":
      return v >= 11 ? ["redacts"] : [];
    default:
      return [];
  }
}

/** Returns a redacted copy of `event`; the input is not modified. */
export function redactEvent<T extends object>(event: T, roomVersion: string): T {
  const v = versionNumber(roomVersion);
  const ev = event as JsonObject;
  const out: JsonObject = {};
  for (const k of v >= 11 ? TOP_LEVEL_V11 : TOP_LEVEL_V1) {
    if (Object.hasOwn(ev, k)) out[k] = ev[k];
  }
  const content = isJsonObject(ev.content) ? ev.content : {};
  const kept = keptContentKeys(String(ev.type), v);
  let newContent: JsonObject;
  if (kept === "all") {
    newContent = { ...content };
  } else {
    newContent = {};
    for (const k of kept) if (Object.hasOwn(content, k)) newContent[k] = content[k];
  }
  // v11 keeps only the `signed` part of a third-party invite, which the auth rules need.
  if (v >= 11 && ev.type === "m.room.member" && isJsonObject(content.third_party_invite)) {
    const signed = content.third_party_invite.signed;
    if (signed !== undefined) newContent.third_party_invite = { signed };
  }
  out.content = newContent;
  return out as T;
}
