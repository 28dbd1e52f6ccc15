/** Row mapping and small rules the two KeyStore backends share (see keys-types.ts). */
import { canonicalJson } from "../events/canonical-json.ts";
import type { BackupKeyRow } from "./keys-types.ts";

export function backupKeyFromRow(r: any): BackupKeyRow {
  return {
    roomId: r.room_id,
    sessionId: r.session_id,
    data: {
      first_message_index: Number(r.first_message_index),
      forwarded_count: Number(r.forwarded_count),
      is_verified: r.is_verified === true || r.is_verified === 1,
      session_data: JSON.parse(r.session_data),
    },
  };
}

/** Backup versions are decimal strings we hand out; anything else names no version (and never reaches SQL). */
export function backupVersionNumber(version: string): number | null {
  return /^[0-9]{1,15}$/.test(version) ? Number(version) : null;
}

/** Equal as JSON values, whatever the key order. */
export function sameJson(a: unknown, b: unknown): boolean {
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return JSON.stringify(a) === JSON.stringify(b);
  }
}
