/**
 * Sync tokens: `s<stream>_<typingSerial>`. The stream part means "every streamed row with stream <= N has been
 * delivered"; the typing part is the TypingService serial seen. /sync `next_batch` and timeline `prev_batch` use this
 * format, and GET /rooms/{roomId}/messages accepts it as `from`/`to` (see paginationFrom).
 */
import { AmiError } from "../../../core/errors.ts";

export interface SyncToken {
  stream: number;
  typing: number;
}

const TOKEN = /^s(\d{1,15})_(\d{1,15})$/;

/** Parse a token; anything malformed is M_INVALID_PARAM (400): the spec lets servers reject unknown `since`. */
export function parseSyncToken(token: string): SyncToken {
  const m = TOKEN.exec(token);
  if (!m) throw new AmiError("M_INVALID_PARAM", `Invalid sync token '${token.slice(0, 64)}'`);
  return { stream: Number(m[1]), typing: Number(m[2]) };
}

export function formatSyncToken(t: SyncToken): string {
  return `s${t.stream}_${t.typing}`;
}

/**
 * The exclusive `from` bound of a RoomEventQuery starting at `token`: backwards returns events with
 * stream <= N (so from = N + 1), forwards returns events with stream > N (from = N).
 */
export function paginationFrom(token: string, dir: "b" | "f"): number {
  const { stream } = parseSyncToken(token);
  return dir === "b" ? stream + 1 : stream;
}
