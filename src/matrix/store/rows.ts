/** Row <-> object mapping shared by both backends (SQLite gives 0/1 for booleans, PostgreSQL true/false). */
import type {
  AccountDataRow,
  DeviceRow,
  MediaRow,
  MembershipRow,
  PendingMediaRow,
  PresenceRow,
  ReceiptRow,
  RegistrationTokenRow,
  ReportRow,
  RoomRow,
  StoredEvent,
  UserPatch,
  UserRow,
} from "./types.ts";

/** Global account data and unthreaded receipts are stored under "" so they can be part of a primary key. */
export const NONE = "";

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

export const MEMBER_COLUMNS = "room_id, user_id, membership, event_id, stream";
export const membershipFromRow = (r: any): MembershipRow => ({
  roomId: r.room_id,
  userId: r.user_id,
  membership: r.membership,
  eventId: r.event_id,
  stream: r.stream,
});

export const userFromRow = (r: any): UserRow => ({
  userId: r.user_id,
  passwordHash: r.password_hash,
  createdTs: r.created_ts,
  admin: !!r.admin,
  deactivated: !!r.deactivated,
  isGuest: !!r.is_guest,
  displayname: r.displayname,
  avatarUrl: r.avatar_url,
  locked: !!r.locked,
  suspended: !!r.suspended,
  shadowBanned: !!r.shadow_banned,
});
export const deviceFromRow = (r: any): DeviceRow => ({
  userId: r.user_id,
  deviceId: r.device_id,
  displayName: r.display_name,
  createdTs: r.created_ts,
  lastSeenTs: r.last_seen_ts,
  lastSeenIp: r.last_seen_ip,
  lastSeenUserAgent: r.last_seen_user_agent ?? null,
});
export const regTokenFromRow = (r: any): RegistrationTokenRow => ({
  token: r.token,
  usesAllowed: r.uses_allowed,
  pending: r.pending,
  completed: r.completed,
  expiryTs: r.expiry_ts,
});
export const roomFromRow = (r: any): RoomRow => ({
  roomId: r.room_id,
  version: r.version,
  creator: r.creator,
  createdTs: r.created_ts,
  isPublic: !!r.is_public,
});
export const presenceFromRow = (r: any): PresenceRow => ({
  userId: r.user_id,
  presence: r.presence,
  statusMsg: r.status_msg,
  lastActiveTs: r.last_active_ts,
  stream: r.stream,
});
export const mediaFromRow = (r: any): MediaRow => ({
  mediaId: r.media_id,
  uploader: r.uploader,
  contentType: r.content_type,
  filename: r.filename,
  size: r.size,
  sha256: r.sha256,
  createdTs: r.created_ts,
  quarantinedBy: r.quarantined_by ?? null,
});

export const pendingMediaFromRow = (r: any): PendingMediaRow => ({
  mediaId: r.media_id,
  userId: r.user_id,
  createdTs: r.created_ts,
  expiresTs: r.expires_ts,
});

export const reportFromRow = (r: any): ReportRow => ({
  id: Number(r.id),
  kind: r.kind,
  receivedTs: Number(r.received_ts),
  userId: r.user_id,
  roomId: r.room_id,
  eventId: r.event_id,
  targetUserId: r.target_user_id,
  reason: r.reason,
  score: r.score === null ? null : Number(r.score),
});

/** `expr LIKE ?` matching `needle` anywhere, case-insensitively, with LIKE's wildcards in the needle escaped. */
export function containsSql(expr: string, needle: string): [sql: string, param: string] {
  const escaped = needle.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`);
  return [`lower(${expr}) LIKE ? ESCAPE '\\'`, `%${escaped}%`];
}

/** Columns a patch may set, by patch key. */
export const USER_PATCH_COLUMNS: Record<keyof UserPatch, string> = {
  passwordHash: "password_hash",
  admin: "admin",
  deactivated: "deactivated",
  displayname: "displayname",
  avatarUrl: "avatar_url",
  locked: "locked",
  suspended: "suspended",
  shadowBanned: "shadow_banned",
};
export const DEVICE_PATCH_COLUMNS = {
  displayName: "display_name",
  lastSeenTs: "last_seen_ts",
  lastSeenIp: "last_seen_ip",
  lastSeenUserAgent: "last_seen_user_agent",
};

/**
 * Rows of a batched read carrying an `idx` column (the input's index: 0-based from SQLite's json_each, 1-based
 * from PostgreSQL's WITH ORDINALITY, given as `first`), grouped into one list per input, in row order.
 */
export function byIndex<T>(n: number, rows: any[], map: (r: any) => T, first: 0 | 1): T[][] {
  const out: T[][] = Array.from({ length: n }, () => []);
  for (const r of rows) out[Number(r.idx) - first].push(map(r));
  return out;
}
