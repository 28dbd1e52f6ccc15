/** Identifier grammar (spec appendix "Identifier Grammar"). */
import { randomBytes } from "node:crypto";

const MAX_ID_BYTES = 255;

function byteLength(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const IPV6_RE = /^\[[0-9A-Fa-f:.]{2,45}\]$/;
const DNS_RE = /^[A-Za-z0-9.-]{1,255}$/;

/** server_name = hostname [":" port]; hostname = IPv4 / "[" IPv6 "]" / dns-name. */
export function isValidServerName(name: string): boolean {
  let host = name;
  const portMatch = /:(\d{1,5})$/.exec(name);
  if (portMatch) {
    // An IPv6 literal ends in "]" before its port; a bare IPv6 without brackets is not a server name.
    host = name.slice(0, portMatch.index);
    if (Number(portMatch[1]) > 65535) return false;
  }
  if (host.startsWith("[")) return IPV6_RE.test(host);
  const v4 = IPV4_RE.exec(host);
  if (v4) return v4.slice(1).every((o) => Number(o) <= 255);
  return DNS_RE.test(host) && !host.includes(":");
}

function splitSigilId(id: string, sigil: string): { localpart: string; server: string } | null {
  if (typeof id !== "string" || !id.startsWith(sigil) || byteLength(id) > MAX_ID_BYTES) return null;
  const colon = id.indexOf(":");
  if (colon < 0) return null;
  const localpart = id.slice(1, colon);
  const server = id.slice(colon + 1);
  if (localpart.includes("\u0000") || !localpart.isWellFormed() || !isValidServerName(server)) return null;
  return { localpart, server };
}

/**
 * Parses "@localpart:server". Accepts the historical localpart set (any code point but ':' and
 * NUL), as the spec requires for existing rooms; use isValidLocalpart for new accounts.
 */
export function parseUserId(id: string): { localpart: string; server: string } | null {
  return splitSigilId(id, "@");
}

/** The localpart grammar for new user IDs: 1+ of [a-z0-9._=\-/+]. */
export function isValidLocalpart(l: string): boolean {
  return typeof l === "string" && /^[a-z0-9._=\-/+]+$/.test(l);
}

/** A user ID that is fully compliant with the current grammar (not merely historical). */
export function isValidUserId(id: string): boolean {
  const p = parseUserId(id);
  return p !== null && isValidLocalpart(p.localpart);
}

/** Room version 12's room ID: `!` + the URL-safe unpadded base64 sha256 reference hash of the create event. */
const HASHED_ROOM_ID_RE = /^![A-Za-z0-9_-]{43}$/;

/** "!opaque:server" (room versions 1-11) or "!hash" (room version 12, no server part). */
export function isValidRoomId(id: string): boolean {
  if (typeof id === "string" && HASHED_ROOM_ID_RE.test(id)) return true;
  const p = splitSigilId(id, "!");
  return p !== null && p.localpart.length > 0;
}

/** True for a room version 12 room ID (a create event's hash, no server part). */
export function isHashedRoomId(id: string): boolean {
  return typeof id === "string" && HASHED_ROOM_ID_RE.test(id);
}

/** Room version 12: the room ID a create event with this event ID names (`$` becomes `!`). */
export function roomIdOfCreateEvent(createEventId: string): string {
  return `!${createEventId.slice(1)}`;
}

/** Room version 12: the create event's ID a hashed room ID implies; undefined for other room IDs. */
export function createEventIdOfRoom(roomId: string): string | undefined {
  return isHashedRoomId(roomId) ? `$${roomId.slice(1)}` : undefined;
}

export function isValidRoomAlias(a: string): boolean {
  const p = splitSigilId(a, "#");
  return p !== null && p.localpart.length > 0;
}

/** "$opaque" (room versions 4+) or the legacy "$opaque:server"; at most 255 bytes. */
export function isValidEventId(id: string): boolean {
  return (
    typeof id === "string" &&
    id.length > 1 &&
    id.startsWith("$") &&
    byteLength(id) <= MAX_ID_BYTES &&
    !id.includes("\u0000") &&
    id.isWellFormed()
  );
}

/** The server part of a user/room/alias (or legacy event) ID, or null when there is none. */
export function serverNameOf(id: string): string | null {
  if (typeof id !== "string" || id.length < 2 || !"@!#$".includes(id[0])) return null;
  return splitSigilId(id, id[0])?.server ?? null;
}

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** `len` crypto-random letters [A-Za-z], for room IDs, device IDs, tokens and key versions. */
export function randomString(len: number): string {
  let out = "";
  while (out.length < len) {
    for (const b of randomBytes(len * 2)) {
      // 208 = 4 * 52: dropping bytes above it keeps every letter equally likely.
      if (b < 208) out += LETTERS[b % 52];
      if (out.length === len) break;
    }
  }
  return out;
}
