/** Event semantics and input rules both stores apply the same way (row mapping is in rows.ts). */
import { AmiError } from "../../core/errors.ts";
import type { NewEvent } from "./types.ts";

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

/** The target of a redaction: top-level `redacts` before room v11 (authoritative there), `content.redacts` from v11. */
export function redactsOf(pdu: Record<string, any>): string | null {
  const r = pdu.redacts ?? pdu.content?.redacts;
  return typeof r === "string" ? r : null;
}

export function membershipOf(e: NewEvent): string | null {
  if (e.type !== "m.room.member" || e.stateKey === null) return null;
  const m = e.pdu.content?.membership;
  return typeof m === "string" ? m : null;
}

/** Filter IDs are decimal strings we hand out; anything else cannot name a filter (and must not reach SQL as a number). */
export function parseFilterId(filterId: string): number | null {
  if (!/^[0-9]{1,15}$/.test(filterId)) return null;
  return Number(filterId);
}

/** PostgreSQL cannot store NUL in text, so neither backend accepts it: both take exactly the same data. */
export const nulInText = (): AmiError => new AmiError("M_INVALID_PARAM", "Text must not contain NUL characters.");

/** Thrown when a database holds a newer schema than this build knows: refusing beats corrupting it. */
export function schemaTooNew(found: number, known: number): AmiError {
  return new AmiError(
    "AMI_INTERNAL",
    `database schema version ${found} is newer than this ami-streams supports (${known}); upgrade ami-streams`,
  );
}

/** An event's relation (content.m.relates_to) as the relations table keeps it. */
export interface Relation {
  relType: string;
  relatesTo: string;
  /** m.annotation only: the annotation's key (the reaction). */
  key: string | null;
}

/** The relation an event declares (spec "Relationships"): rel_type and event_id strings, or none. */
export function relationOf(pdu: Record<string, any>): Relation | null {
  const r = pdu.content?.["m.relates_to"];
  if (typeof r !== "object" || r === null) return null;
  if (typeof r.rel_type !== "string" || typeof r.event_id !== "string") return null;
  const key = r.rel_type === "m.annotation" && typeof r.key === "string" ? r.key : null;
  return { relType: r.rel_type, relatesTo: r.event_id, key };
}

/** The words of a search term as both backends' full-text indexes split them: lower-cased letters and digits. */
export function searchWords(term: string): string[] {
  return [...new Set(term.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [])].slice(0, 16);
}

/** `s` as a LIKE pattern's literal part (backslash the escape, as in `ESCAPE '\\'`). */
export const likeLiteral = (s: string): string => s.replace(/[\\%_]/g, (c) => `\\${c}`);
