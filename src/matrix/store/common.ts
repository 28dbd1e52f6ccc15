/** Helpers shared by the SQLite and PostgreSQL stores: row mapping and the pieces of event semantics both apply. */
import { AmiError } from "../../core/errors.ts";
import type { AccountDataRow, NewEvent, ReceiptRow, StoredEvent } from "./types.ts";

/** Global account data and unthreaded receipts are stored under "" so they can be part of a primary key. */
export const NONE = "";

/** Matrix filters allow "*" as a wildcard in event types; split exact types (index-friendly) from patterns. */
export function splitTypes(types: string[]): { exact: string[]; patterns: string[] } {
  const exact: string[] = [];
  const patterns: string[] = [];
  for (const t of types) (t.includes("*") ? patterns : exact).push(t);
  return { exact, patterns };
}

/** A type pattern as an SQLite GLOB (case-sensitive, unlike LIKE); glob metacharacters are bracketed. */
export const toGlob = (pattern: string): string =>
  pattern
    .split("*")
    .map((part) => part.replace(/[?[]/g, (c) => `[${c}]`))
    .join("*");

/** A type pattern as a PostgreSQL LIKE pattern (backslash is LIKE's default escape). */
export const toLike = (pattern: string): string =>
  pattern
    .split("*")
    .map((part) => part.replace(/[\\%_]/g, (c) => `\\${c}`))
    .join("%");

/** `contains_url` filter semantics (as Synapse): the content has a string `url`. */
export const containsUrl = (pdu: Record<string, any>): boolean => typeof pdu.content?.url === "string";

/** The target of a redaction: top-level `redacts` before room v11, `content.redacts` from v11. */
export function redactsOf(pdu: Record<string, any>): string | null {
  const r = pdu.content?.redacts ?? pdu.redacts;
  return typeof r === "string" ? r : null;
}

export function membershipOf(e: NewEvent): string | null {
  if (e.type !== "m.room.member" || e.stateKey === null) return null;
  const m = e.pdu.content?.membership;
  return typeof m === "string" ? m : null;
}

/** The column set every event query selects, in the order `eventFromRow` expects. */
export const EVENT_COLUMNS =
  "e.stream, e.event_id, e.room_id, e.type, e.state_key, e.sender, e.origin_server_ts, e.depth, e.pdu, e.redacted_by, e.txn_device_id, e.txn_id";

export function eventFromRow(r: any): StoredEvent {
  return {
    stream: Number(r.stream),
    eventId: r.event_id,
    roomId: r.room_id,
    type: r.type,
    stateKey: r.state_key,
    sender: r.sender,
    originServerTs: Number(r.origin_server_ts),
    depth: Number(r.depth),
    pdu: JSON.parse(r.pdu),
    redactedBy: r.redacted_by,
    txnDeviceId: r.txn_device_id,
    txnId: r.txn_id,
  };
}

export function accountDataFromRow(r: any): AccountDataRow {
  return {
    userId: r.user_id,
    roomId: r.room_id === NONE ? null : r.room_id,
    type: r.type,
    content: JSON.parse(r.content),
    stream: Number(r.stream),
  };
}

export function receiptFromRow(r: any): ReceiptRow {
  return {
    roomId: r.room_id,
    userId: r.user_id,
    type: r.type,
    eventId: r.event_id,
    threadId: r.thread_id === NONE ? null : r.thread_id,
    ts: Number(r.ts),
    stream: Number(r.stream),
  };
}

/** Filter IDs are decimal strings we hand out; anything else cannot name a filter (and must not reach SQL as a number). */
export function parseFilterId(filterId: string): number | null {
  if (!/^[0-9]{1,15}$/.test(filterId)) return null;
  return Number(filterId);
}

/** Thrown when a database holds a newer schema than this build knows: refusing beats corrupting it. */
export function schemaTooNew(found: number, known: number): AmiError {
  return new AmiError(
    "AMI_INTERNAL",
    `database schema version ${found} is newer than this ami-streams supports (${known}); upgrade ami-streams`,
  );
}
