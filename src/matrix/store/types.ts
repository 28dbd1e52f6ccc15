/**
 * The homeserver's store: one interface per area (accounts, rooms, events, ...), composed into `Store`. Two
 * backends implement them — sqlite/ (node:sqlite, the embedded default) and postgres/ — where the SQL is the same
 * in both dialects it is written once (sql/, over the Sql seam in sql.ts); one conformance suite per area
 * (conformance/) runs against both.
 *
 * Stream positions: every row that /sync must deliver (events, account data, receipts, presence) carries a
 * `stream` number. The homeserver allocates them in memory from one counter (initialised from
 * getMaxStream()) and serialises all such writes, so the store never allocates them and commit order equals
 * stream order (with several workers the counter is a PostgreSQL sequence every worker takes from, and readers stop at
 * the persisted position: cluster/positions.ts). Each write method below is one transaction: it is either fully
 * applied or not at all.
 */

import type { StateKey } from "../events/auth.ts";
import type { JsonObject } from "../events/types.ts";
import type { TxTurn } from "../stream.ts";
import type { DestinationStore } from "./destinations-types.ts";
import type { DeviceListStore } from "./device-lists-types.ts";
import type { KeyBackupStore, KeyStore } from "./keys-types.ts";
import type { ServerKeyStore } from "./server-keys-types.ts";

export interface UserRow {
  userId: string;
  /** scrypt hash string (see service/passwords.ts); null for users without a password. */
  passwordHash: string | null;
  createdTs: number;
  admin: boolean;
  deactivated: boolean;
  isGuest: boolean;
  displayname: string | null;
  avatarUrl: string | null;
  /**
   * Account locking (spec "Account locking"): every token answers 401 M_USER_LOCKED. Reads always set it; absent
   * on create means false.
   */
  locked?: boolean;
  /** Account suspension (spec "Account suspension"): read-only use. Reads always set it; absent on create = false. */
  suspended?: boolean;
  /** Shadow-banned (admin API): the user's sends are answered but never stored. Read as false when absent. */
  shadowBanned?: boolean;
}

export type UserPatch = Partial<
  Pick<
    UserRow,
    "passwordHash" | "admin" | "deactivated" | "displayname" | "avatarUrl" | "locked" | "suspended" | "shadowBanned"
  >
>;

/** Which users an admin listing wants (Synapse's GET /_synapse/admin/v2/users filters). */
export interface UserListFilter {
  includeDeactivated?: boolean;
  /** false: leave guests out (Synapse's `guests=false`); absent or true: include them. */
  guests?: boolean;
  /** true: only admins; false: only non-admins; absent: both. */
  admins?: boolean;
  /** Substring of the localpart or display name (case-insensitive); the localpart needs `serverName`. */
  name?: string;
  /** This server's name: `name` then matches the localpart of user IDs (all local) instead of the whole ID. */
  serverName?: string;
  /** Substring of the user ID (case-insensitive). */
  userIdLike?: string;
}

/** The orders of an admin user listing (Synapse's `order_by` values this server keeps). */
export const USER_ORDERS = [
  "name",
  "is_guest",
  "admin",
  "deactivated",
  "shadow_banned",
  "displayname",
  "avatar_url",
  "creation_ts",
] as const;
export type UserOrder = (typeof USER_ORDERS)[number];

export interface DeviceRow {
  userId: string;
  deviceId: string;
  displayName: string | null;
  createdTs: number;
  lastSeenTs: number | null;
  lastSeenIp: string | null;
  /** The User-Agent of the device's last seen request (whois). Reads always set it; absent on upsert = null. */
  lastSeenUserAgent?: string | null;
}

export interface TokenRow {
  /** sha256 hex of the access token: tokens are never stored in clear. */
  tokenHash: string;
  userId: string;
  deviceId: string;
  createdTs: number;
  /** When the token stops working (ms); null: never (only tokens issued with a refresh token expire). */
  expiresTs?: number | null;
  /** sha256 hex of the refresh token issued with this access token; null when none was. */
  refreshHash?: string | null;
}

/** A refresh token (spec "Refreshing access tokens"), stored as its sha256 like access tokens. */
export interface RefreshTokenRow {
  tokenHash: string;
  userId: string;
  deviceId: string;
  createdTs: number;
  /** The refresh token this one was exchanged for (it stays usable until that successor's session is used). */
  nextHash: string | null;
}

/** A short-lived token with no device: `login` (m.login.token, single use) or `openid` (OpenID userinfo). */
export interface ShortTokenRow {
  tokenHash: string;
  kind: "login" | "openid";
  userId: string;
  expiresTs: number;
}

export interface RegistrationTokenRow {
  token: string;
  usesAllowed: number | null;
  pending: number;
  completed: number;
  expiryTs: number | null;
}

export interface RoomRow {
  roomId: string;
  version: string;
  creator: string;
  createdTs: number;
  /** Published in the room directory. */
  isPublic: boolean;
}

/** A persisted PDU (room event) as the store returns it. */
export interface StoredEvent {
  stream: number;
  eventId: string;
  roomId: string;
  type: string;
  stateKey: string | null;
  sender: string;
  originServerTs: number;
  depth: number;
  /** The full PDU as signed (without event_id: v4+ PDUs do not carry it; without unsigned). */
  pdu: Record<string, any>;
  /** Event ID of the redaction that redacted this event, if any. */
  redactedBy: string | null;
  /** The sender's device and transaction ID, when sent with a txnId (unsigned.transaction_id). */
  txnDeviceId: string | null;
  txnId: string | null;
}

export interface NewEvent {
  stream: number;
  eventId: string;
  roomId: string;
  type: string;
  stateKey: string | null;
  sender: string;
  originServerTs: number;
  depth: number;
  pdu: Record<string, any>;
  /**
   * Set for sends with a transaction ID (idempotency + unsigned.transaction_id). `scope` is the endpoint path the
   * ID was used on (spec "Transaction identifiers": scoped to a device and an HTTP endpoint path).
   */
  txn?: { userId: string; deviceId: string; scope: string; txnId: string };
  /**
   * The event's place in the state DAG (docs/ARCHITECTURE.md "Room DAG"). Without it the event gets its edges and
   * extremity but no state group (its state is then read from state_history, as for events stored before the DAG).
   */
  state?: EventStateWrite;
  /**
   * A state-only event (federation: the room state a send_join answer carries): stored with its stream position,
   * state_history, current_state and membership rows and its DAG edges, but never in a timeline read (getRoomEvents,
   * getLatestEventsPerRoom, getLatestEvent, getEventNearTimestamp, the counts, search) and without relations.
   */
  stateOnly?: boolean;
}

/** One (type, state_key) -> event ID entry of a room state. */
export interface StateEntry {
  type: string;
  stateKey: string;
  eventId: string;
}

/**
 * How persistEvent records the state around a timeline event. Group ids are stream positions, so the writer
 * allocates none: +s is the state after the state event at s, -s a state before the event at s that is no
 * existing group. A state event's group after is `before` plus its own entry (a delta), or a full snapshot once
 * the delta chain would exceed STATE_CHAIN_MAX (reads then walk at most that many groups).
 */
export interface EventStateWrite {
  /** The group holding the state before the event (its single prev event's state after); null: the empty state. */
  before: number | null;
  /** Deltas between `before` and its last snapshot (the room head keeps it, so the writer reads nothing back). */
  beforeChain: number;
  /** The state before as a full map when it is no existing group (forks merged by state resolution): stored as group -stream. */
  resolved?: StateEntry[];
}

/** The longest delta chain above a snapshot (Synapse's MAX_STATE_DELTA_HOPS is 100). */
export const STATE_CHAIN_MAX = 100;

/** The state groups around a timeline event: the state before it and after it (the same for non-state events). */
export interface EventStateGroups {
  /** null: the empty state (before the create event). */
  before: number | null;
  after: number | null;
  /** Deltas between `after` and its last snapshot. */
  afterChain: number;
}

/** An event as the DAG sees it: a timeline event (stream set) or an outlier (stream null, no state). */
export interface DagEvent {
  eventId: string;
  roomId: string;
  type: string;
  stateKey: string | null;
  sender: string;
  depth: number;
  pdu: Record<string, any>;
  /** Stream position of a timeline event; null for an outlier. */
  stream: number | null;
  /** Why the event was rejected by the authorization rules (stored so it is not fetched again); null if not. */
  rejected: string | null;
}

/** An event stored without state and outside every timeline (an auth event fetched over federation, a rejected event). */
export type NewOutlier = Pick<
  StoredEvent,
  "eventId" | "roomId" | "type" | "stateKey" | "sender" | "originServerTs" | "depth" | "pdu"
> & { rejected?: string | null };

/**
 * The room DAG for federation: prev_events and auth_events edges, forward extremities, outliers and per-event
 * state groups. persistEvent/persistEvents write a timeline event's part in the same transaction as the event:
 * its prev/auth edges (from the PDU), the forward extremities (its prev events stop being extremities; it becomes
 * one unless a stored event already names it as a prev), its state groups (NewEvent.state), and it stops being an
 * outlier. Outliers are never in timelines, /sync or current state.
 */
export interface DagStore {
  /** A room's forward extremities, newest first (greatest depth, then stream). */
  getForwardExtremities(roomId: string): Promise<{ eventId: string; depth: number }[]>;
  /** Replace a room's forward extremities (federation: after state resolution or a backfill). */
  setForwardExtremities(roomId: string, eventIds: string[]): Promise<void>;
  /**
   * Bring a room's current state (current_state and memberships) to `state` (stateKey(type, state_key) -> event
   * ID; federation: the resolved state of its forward extremities): entries that differ are written (stream = the
   * named event's own stream position), entries not in `state` removed; entries naming no timeline event are
   * skipped. One transaction. Returns how many entries changed.
   */
  setCurrentState(roomId: string, state: ReadonlyMap<StateKey, string>): Promise<number>;
  /** prev_events of each stored event asked for (timeline events; outliers have none recorded). */
  getPrevEvents(eventIds: string[]): Promise<Map<string, string[]>>;
  /**
   * auth_events of each stored event asked for (timeline events and outliers), sorted. Read from the PDUs:
   * the auth edges table holds state events' and outliers' edges only, all an auth chain walks through.
   */
  getAuthEvents(eventIds: string[]): Promise<Map<string, string[]>>;
  /** The IDs among `eventIds` stored neither as timeline events nor as outliers, in the order given. */
  getMissingEvents(eventIds: string[]): Promise<string[]>;
  /** The auth chain of `eventIds`: every event reachable through auth edges (the inputs only when reached), sorted. */
  getAuthChain(eventIds: string[]): Promise<string[]>;
  /** Stored events (timeline or outlier) among `eventIds`, in no particular order. */
  getDagEvents(eventIds: string[]): Promise<DagEvent[]>;
  /** Store outliers with their auth edges; events already stored (either way) are left as they are. One transaction. */
  persistOutliers(events: NewOutlier[]): Promise<void>;
  /** The state groups recorded for a timeline event; null when none are (an outlier, or stored before the DAG). */
  getEventStateGroups(eventId: string): Promise<EventStateGroups | null>;
  /**
   * getEventStateGroups, first recording them for a timeline event stored before the DAG (a snapshot of
   * state_history at its stream position); null for an unknown event or an outlier.
   */
  ensureEventStateGroups(eventId: string): Promise<EventStateGroups | null>;
  /**
   * Point a timeline event's state-after at another existing group of its room (federation: a partial-state room's
   * forward extremity gets the full state once the resync has it, so events built on it carry the full state).
   * Its state-before is kept. False when the event is unknown or the group is not of its room.
   */
  setEventStateAfter(eventId: string, group: number): Promise<boolean>;
  /** The full state of a group, keyed by stateKey(type, state_key). */
  getStateGroup(group: number): Promise<Map<StateKey, string>>;
  /** The state before (or after) a timeline event as (type, state_key) -> event ID; null for an unknown event or an outlier. */
  getStateIdsAtEvent(eventId: string, at: "before" | "after"): Promise<Map<StateKey, string> | null>;
  /** getStateIdsAtEvent as the events themselves (timeline events or outliers), ordered by type then state key. */
  getStateEventsAtEvent(eventId: string, at: "before" | "after"): Promise<DagEvent[] | null>;
}

export interface MembershipRow {
  roomId: string;
  userId: string;
  membership: string; // join | invite | leave | ban | knock
  eventId: string;
  stream: number;
}

export interface RoomEventQuery {
  roomId: string;
  /** Direction: 'b' newest-first from `from` (exclusive) downwards; 'f' oldest-first from `from` (exclusive) upwards. */
  dir: "b" | "f";
  /** Exclusive start stream position. For dir 'b' with no bound use Number.MAX_SAFE_INTEGER; for 'f', 0. */
  from: number;
  /** Optional exclusive end bound. */
  to?: number;
  limit: number;
  types?: string[];
  notTypes?: string[];
  senders?: string[];
  notSenders?: string[];
  containsUrl?: boolean;
}

/** Filter fields shared by getRoomEvents and getLatestEventsPerRoom. */
export type EventFilterQuery = Pick<RoomEventQuery, "types" | "notTypes" | "senders" | "notSenders" | "containsUrl">;

/** One room's stream window for the batched reads: `after` < stream < `before` (both exclusive). */
export interface RoomStreamWindow {
  roomId: string;
  before: number;
  /** No lower bound when absent. */
  after?: number;
}

/**
 * getEventNearTimestamp: among a room's events with stream in lo..hi (inclusive), the first with
 * origin_server_ts >= ts (dir 'f') or the last with origin_server_ts <= ts (dir 'b'); ties by stream.
 */
export interface TimestampQuery {
  roomId: string;
  ts: number;
  dir: "f" | "b";
  lo: number;
  hi: number;
}

/** A room and a stream position in it (getStatesAt). */
export interface RoomAt {
  roomId: string;
  stream: number;
}

/** One piece of room state, (type, state key) in a room (getStateHistories). */
export interface RoomStateKey {
  roomId: string;
  type: string;
  stateKey: string;
}

/** A room and a stream range (after, upto] in it (countEventsPerRoom). */
export interface RoomStreamRange {
  roomId: string;
  after: number;
  upto: number;
}

export interface AccountDataRow {
  userId: string;
  /** null for global account data. */
  roomId: string | null;
  type: string;
  content: Record<string, any>;
  stream: number;
}

export interface ReceiptRow {
  roomId: string;
  userId: string;
  /** m.read | m.read.private | m.fully_read is account data, not a receipt */
  type: string;
  eventId: string;
  /** null = unthreaded receipt; "main" or a thread root event ID otherwise. */
  threadId: string | null;
  ts: number;
  stream: number;
}

export interface PresenceRow {
  userId: string;
  presence: string; // online | offline | unavailable
  statusMsg: string | null;
  lastActiveTs: number;
  stream: number;
}

export interface MediaRow {
  mediaId: string;
  uploader: string;
  contentType: string;
  filename: string | null;
  size: number;
  sha256: string;
  createdTs: number;
  /** The admin who quarantined it (never served while set); null or absent when not quarantined. */
  quarantinedBy?: string | null;
}

/** A media listing's filter and page (admin API). */
export interface MediaQuery {
  uploader?: string;
  /** Same content (the upload's SHA-256). */
  sha256?: string;
  /** Only quarantined (true) or only not quarantined (false) media. */
  quarantined?: boolean;
  mediaIds?: string[];
  /** Uploaded before this time (ms). */
  beforeTs?: number;
  /** Larger than this many bytes. */
  sizeGt?: number;
  offset?: number;
  limit?: number;
  /** Newest first when "b" (default), oldest first when "f". */
  dir?: "f" | "b";
}

/** A content report (spec "Reporting content"; Synapse's event_reports / room_reports / user_reports). */
export interface ReportRow {
  id: number;
  kind: "event" | "room" | "user";
  receivedTs: number;
  /** The reporter. */
  userId: string;
  roomId: string | null;
  eventId: string | null;
  targetUserId: string | null;
  reason: string | null;
  score: number | null;
}

export interface ReportQuery {
  kind: ReportRow["kind"];
  offset: number;
  limit: number;
  /** "b" (default): newest first. */
  dir: "f" | "b";
  userId?: string;
  roomId?: string;
  targetUserId?: string;
}

/** Content reports. */
export interface ReportStore {
  /** Records a report; resolves to its ID (increasing). */
  addReport(r: Omit<ReportRow, "id">): Promise<number>;
  getReport(kind: ReportRow["kind"], id: number): Promise<ReportRow | null>;
  /** One page and the total matching the query's filters. */
  listReports(q: ReportQuery): Promise<{ rows: ReportRow[]; total: number }>;
  deleteReport(kind: ReportRow["kind"], id: number): Promise<boolean>;
}

/** A media ID created by POST /_matrix/media/v1/create whose bytes have not been uploaded yet. */
export interface PendingMediaRow {
  mediaId: string;
  userId: string;
  createdTs: number;
  /** After this the ID cannot be uploaded to (spec `unused_expires_at`). */
  expiresTs: number;
}

/** A URL's cached preview (Synapse's local_media_repository_url_cache), answered until `expiresTs`. */
export interface UrlPreviewRow {
  url: string;
  /** The answer's JSON (OpenGraph keys, og:image as an mxc:// URI). */
  og: string;
  /** The media the og:image was stored as, if any. */
  mediaId: string | null;
  downloadTs: number;
  expiresTs: number;
}

/** Users, devices, access tokens and registration tokens. */
export interface AccountStore {
  // ---- users -------------------------------------------------------------
  /** Throws AmiError("M_USER_IN_USE") if the user exists. */
  createUser(u: UserRow): Promise<void>;
  getUser(userId: string): Promise<UserRow | null>;
  /** getUser of each: the users that exist, ordered by user ID (the WebSocket hub builds many frames together). */
  getUsers(userIds: string[]): Promise<UserRow[]>;
  /** Ordered by userId, starting after `from` (exclusive). */
  listUsers(opts: { from?: string; limit: number; includeDeactivated?: boolean }): Promise<UserRow[]>;
  /** An admin listing: the page at `offset` in `order` (ties by user ID) and the total matching `filter`. */
  queryUsers(q: {
    filter: UserListFilter;
    order: UserOrder;
    dir: "f" | "b";
    offset: number;
    limit: number;
  }): Promise<{ rows: UserRow[]; total: number }>;
  updateUser(userId: string, patch: UserPatch): Promise<void>;
  countUsers(): Promise<number>;

  // ---- devices and access tokens -------------------------------------------
  /** Insert or replace a device. */
  upsertDevice(d: DeviceRow): Promise<void>;
  getDevice(userId: string, deviceId: string): Promise<DeviceRow | null>;
  listDevices(userId: string): Promise<DeviceRow[]>;
  updateDevice(
    userId: string,
    deviceId: string,
    patch: Partial<Pick<DeviceRow, "displayName" | "lastSeenTs" | "lastSeenIp" | "lastSeenUserAgent">>,
  ): Promise<void>;
  /** Deletes the device and every access and refresh token of it. */
  deleteDevice(userId: string, deviceId: string): Promise<void>;
  createToken(t: TokenRow): Promise<void>;
  getToken(tokenHash: string): Promise<TokenRow | null>;
  deleteToken(tokenHash: string): Promise<void>;
  /** Deletes all the user's access and refresh tokens, except those of `exceptDeviceId` if given. */
  deleteTokensForUser(userId: string, exceptDeviceId?: string): Promise<void>;

  // ---- extended profile fields (everything but displayname and avatar_url) --------
  /** The user's custom profile fields, key -> JSON value, ordered by key. */
  getProfileFields(userId: string): Promise<Record<string, unknown>>;
  /** Set one field (any JSON value, null included); `undefined` deletes it. */
  setProfileField(userId: string, key: string, value: unknown): Promise<void>;

  // ---- registration tokens --------------------------------------------------
  createRegistrationToken(t: RegistrationTokenRow): Promise<void>;
  getRegistrationToken(token: string): Promise<RegistrationTokenRow | null>;
  /** Atomically count one completed use; false if the token is unknown, expired (vs `now`) or used up. */
  consumeRegistrationToken(token: string, now: number): Promise<boolean>;
  listRegistrationTokens(): Promise<RegistrationTokenRow[]>;
  /** Change limits in place (use counts kept); false if the token is unknown. */
  updateRegistrationToken(
    token: string,
    patch: Partial<Pick<RegistrationTokenRow, "usesAllowed" | "expiryTs">>,
  ): Promise<boolean>;
  deleteRegistrationToken(token: string): Promise<void>;
}

/** Refresh tokens and short-lived device-less tokens (m.login.token, OpenID). */
export interface AuthTokenStore {
  /** Throws AmiError("M_UNKNOWN") when the device does not exist. */
  createRefreshToken(r: Omit<RefreshTokenRow, "nextHash">): Promise<void>;
  getRefreshToken(tokenHash: string): Promise<RefreshTokenRow | null>;
  setRefreshTokenNext(tokenHash: string, nextHash: string): Promise<void>;
  /** The refresh tokens that were exchanged for `tokenHash`. */
  refreshTokensBefore(tokenHash: string): Promise<string[]>;
  /** Delete refresh tokens and the access tokens issued with them; returns those access tokens' hashes. */
  deleteRefreshTokens(tokenHashes: string[]): Promise<string[]>;

  createShortToken(t: ShortTokenRow): Promise<void>;
  /**
   * The token if it exists, is of `kind` and has not expired at `now`; with `consume` it is deleted in the same
   * statement, so two concurrent uses of a single-use token cannot both succeed.
   */
  takeShortToken(
    kind: ShortTokenRow["kind"],
    tokenHash: string,
    now: number,
    consume: boolean,
  ): Promise<ShortTokenRow | null>;
  /** Delete the tokens expired at `now`; returns how many. */
  deleteExpiredShortTokens(now: number): Promise<number>;
}

/** Rooms (their creation row and directory flag) and room aliases. */
/** A room whose state is partial (see RoomStore.setPartialState). */
export interface PartialStateRow {
  roomId: string;
  joinEventId: string;
  servers: string[];
}

export interface RoomStore {
  /** Throws AmiError("M_ROOM_IN_USE") if the room exists. */
  createRoom(r: RoomRow): Promise<void>;
  getRoom(roomId: string): Promise<RoomRow | null>;
  setRoomPublic(roomId: string, isPublic: boolean): Promise<void>;
  /** Room IDs published in the directory, ordered by roomId. */
  listPublicRoomIds(): Promise<string[]>;
  /** All rooms, ordered by roomId, after `from` (exclusive). */
  listRooms(opts: { from?: string; limit: number }): Promise<RoomRow[]>;
  countRooms(): Promise<number>;
  /** Block (by an admin: joins refused) or unblock (`by` null) a room ID, known or not. */
  setRoomBlocked(roomId: string, by: string | null): Promise<void>;
  /** Who blocked the room, or null. */
  getRoomBlock(roomId: string): Promise<string | null>;
  /**
   * Mark a room partial-state (a federation join with members omitted, MSC3706): its state at `joinEventId` lacks
   * members until the background resync from `servers` fills it in. Replaces an earlier mark of the room.
   */
  setPartialState(roomId: string, p: { joinEventId: string; servers: string[] }): Promise<void>;
  /** The room's partial-state mark, or null when its state is complete. */
  getPartialState(roomId: string): Promise<PartialStateRow | null>;
  /** Every room still partial-state (to resume their resyncs on start-up), ordered by roomId. */
  listPartialState(): Promise<PartialStateRow[]>;
  /** The resync is done: the room's state is complete. */
  clearPartialState(roomId: string): Promise<void>;

  // ---- room aliases ------------------------------------------------------------
  /** False if the alias exists already. */
  createAlias(alias: string, roomId: string, creator: string): Promise<boolean>;
  getAlias(alias: string): Promise<{ roomId: string; creator: string } | null>;
  deleteAlias(alias: string): Promise<boolean>;
  getAliasesForRoom(roomId: string): Promise<string[]>;
  /** Point every alias of `fromRoomId` at `toRoomId` (a room upgrade), keeping their creators; the aliases moved. */
  moveAliases(fromRoomId: string, toRoomId: string): Promise<string[]>;
  /**
   * Every trace of a room, in one transaction (Synapse's purge): its events (and their search rows, transaction
   * IDs, relations), state, memberships, aliases, receipts, room account data, notifications, reports and the room
   * row. Its block (blocked_rooms) and users' key backups stay. Resolves to the number of events deleted.
   */
  purgeRoom(roomId: string): Promise<number>;
}

/** Room events, the state and memberships they set, and the timeline reads over them. */
export interface EventStore {
  /**
   * One transaction: insert the event; if it has a state key, make it the current state for
   * (type, stateKey); if it is an m.room.member event, update the current membership of stateKey;
   * if it is an m.room.redaction, mark its target (pdu.redacts or pdu.content.redacts) redacted;
   * record the transaction ID when given. Throws if eventId already exists.
   */
  persistEvent(e: NewEvent): Promise<void>;
  /** persistEvent for several events in one transaction (all or nothing), in the order given. */
  persistEvents(events: NewEvent[]): Promise<void>;
  /**
   * persistEvents with the positions taken inside the transaction (PostgreSQL, several processes: stream.ts
   * TxTurn); returns them in order. Absent: positions are taken before.
   */
  persistInTurn?(events: Array<Omit<NewEvent, "stream">>, turn: TxTurn): Promise<number[]>;
  getEvent(eventId: string): Promise<StoredEvent | null>;
  /** Events found among `eventIds`, in stream order. */
  getEvents(eventIds: string[]): Promise<StoredEvent[]>;
  /**
   * For each state event among `streams`, the state event it replaced (the previous event for the same
   * room, type and state key), keyed by the replacing event's stream. Feeds unsigned.prev_content.
   */
  getReplacedState(streams: number[]): Promise<Map<number, StoredEvent>>;
  /** The event ID recorded for (user, device, scope, txnId), if any. */
  getTxnEvent(userId: string, deviceId: string, scope: string, txnId: string): Promise<string | null>;
  /** The newest event of a room in stream order (DagStore.getForwardExtremities has the DAG's heads). */
  getLatestEvent(roomId: string): Promise<StoredEvent | null>;
  getCurrentState(roomId: string): Promise<StoredEvent[]>;
  getCurrentStateEvent(roomId: string, type: string, stateKey: string): Promise<StoredEvent | null>;
  /** Room state after every event with stream <= `stream` was applied. */
  getStateAt(roomId: string, stream: number, types?: string[]): Promise<StoredEvent[]>;
  /** Current membership of one user in one room. */
  getMembership(roomId: string, userId: string): Promise<MembershipRow | null>;
  /** Every room the user has a current membership row in (any membership). */
  getRoomsForUser(userId: string): Promise<MembershipRow[]>;
  /**
   * Is `userId` joined to a room another user of `server` (a user ID ending in `:server`) is joined to? One query,
   * stopping at the first such room (federation device lists and presence ask it per EDU).
   */
  sharesRoomWithServer(userId: string, server: string): Promise<boolean>;
  /** Current membership rows of a room, optionally only those with `membership`. */
  getMembers(roomId: string, membership?: string): Promise<MembershipRow[]>;
  /** The event closest to a timestamp in one direction, within a stream range (TimestampQuery); null if none. */
  getEventNearTimestamp(q: TimestampQuery): Promise<StoredEvent | null>;
  /** Paginate a room's timeline with filters (see RoomEventQuery). */
  getRoomEvents(q: RoomEventQuery): Promise<StoredEvent[]>;
  /** For each room, its greatest event stream position (rooms with no events are absent). */
  getRoomMaxStreams(roomIds: string[]): Promise<Map<string, number>>;
  /** Events of a room with stream in (afterStream, uptoStream] whose sender is not `excludeSender` and type is in `types`. */
  countEvents(
    roomId: string,
    afterStream: number,
    uptoStream: number,
    excludeSender: string,
    types: string[],
  ): Promise<number>;

  // ---- batched reads (one query for many rooms: /sync over hundreds of rooms) -------------------------------
  /**
   * For each window, in the order given: up to `limit` of the room's events inside the window that pass
   * `filter` (as in getRoomEvents), newest first. The same room may appear in several windows.
   */
  getLatestEventsPerRoom(
    windows: RoomStreamWindow[],
    limit: number,
    filter?: EventFilterQuery,
  ): Promise<StoredEvent[][]>;
  /** For each point, in the order given: getStateAt(roomId, stream, types). */
  getStatesAt(points: RoomAt[], types?: string[]): Promise<StoredEvent[][]>;
  /**
   * For each key, in the order given: every state event that set (roomId, type, stateKey), oldest first. History
   * visibility replays these (a user's membership events, a room's m.room.history_visibility changes).
   */
  getStateHistories(keys: RoomStateKey[]): Promise<StoredEvent[][]>;
  /** getMembers(roomId) for each room: every requested room is a key (with [] when it has no members). */
  getMembersOfRooms(roomIds: string[]): Promise<Map<string, MembershipRow[]>>;
  /** For each range, in the order given: countEvents(roomId, after, upto, excludeSender, types). */
  countEventsPerRoom(ranges: RoomStreamRange[], excludeSender: string, types: string[]): Promise<number[]>;
}

/** What clients store per user: account data (global and per room) and sync filters. */
export interface AccountDataStore {
  setAccountData(row: AccountDataRow): Promise<void>;
  getAccountData(userId: string, roomId: string | null, type: string): Promise<AccountDataRow | null>;
  /** All of the user's account data with stream > since (since = 0: all). */
  getAccountDataSince(userId: string, since: number): Promise<AccountDataRow[]>;
  /** getAccountData(userId, roomId, type) of each user that has it, ordered by user ID. */
  getAccountDataOfUsers(userIds: string[], roomId: string | null, type: string): Promise<AccountDataRow[]>;
  /** Returns the new filter ID (a decimal string). */
  createFilter(userId: string, filter: Record<string, any>): Promise<string>;
  getFilter(userId: string, filterId: string): Promise<Record<string, any> | null>;
}

/** The ephemeral data the server keeps: read receipts and presence (typing lives in memory only). */
export interface EphemeralStore {
  /** Upsert by (roomId, userId, type, threadId). */
  setReceipt(row: ReceiptRow): Promise<void>;
  /** Receipts in these rooms with stream > since. */
  getReceiptsSince(roomIds: string[], since: number): Promise<ReceiptRow[]>;
  getReceipt(roomId: string, userId: string, type: string, threadId: string | null): Promise<ReceiptRow | null>;
  /** Every receipt of `userId` in these rooms (any type and thread), ordered by room then stream. */
  getUserReceipts(userId: string, roomIds: string[]): Promise<ReceiptRow[]>;
  /** getUserReceipts of each of these users in these rooms, together, ordered by user, room, stream. */
  getReceiptsOfUsers(userIds: string[], roomIds: string[]): Promise<ReceiptRow[]>;
  setPresence(row: PresenceRow): Promise<void>;
  getPresence(userId: string): Promise<PresenceRow | null>;
  getPresenceSince(userIds: string[], since: number): Promise<PresenceRow[]>;
}

/** Rows describing uploaded media (the bytes live in the blob store). */
export interface MediaStore {
  /** Throws AmiError("M_CANNOT_OVERWRITE_MEDIA") if the media ID exists. */
  putMedia(m: MediaRow): Promise<void>;
  getMedia(mediaId: string): Promise<MediaRow | null>;
  /** Bytes of the media rows `uploader` wrote at or after `sinceTs` (a daily upload quota). */
  uploadedBytesSince(uploader: string, sinceTs: number): Promise<number>;
  /**
   * Record a created media ID unless the user already has `maxPending` unexpired ones (then false). Rows expired
   * before `now` are deleted on the way.
   */
  createPending(p: PendingMediaRow, maxPending: number, now: number): Promise<boolean>;
  getPending(mediaId: string): Promise<PendingMediaRow | null>;
  /** The earliest expiry among the user's unexpired pending IDs (when the next creation is possible), or null. */
  firstPendingExpiry(userId: string, now: number): Promise<number | null>;
  /**
   * The upload of a pending ID: its media row written and its pending row deleted in one transaction. Throws
   * AmiError("M_CANNOT_OVERWRITE_MEDIA") if the media ID has a row already.
   */
  completePending(m: MediaRow): Promise<void>;
  /** Rows matching the query (filter, order by upload time, page) and the total matching the filter. */
  listMedia(q: MediaQuery): Promise<{ rows: MediaRow[]; total: number }>;
  /** Quarantine (`by` an admin) or release (`by` null) media; resolves to the rows changed. */
  setQuarantined(mediaIds: string[], by: string | null): Promise<number>;
  /** Deletes a row; false when there was none. */
  deleteMedia(mediaId: string): Promise<boolean>;
  /** The cached preview of `url` unless it expired at or before `now`. */
  getUrlPreview(url: string, now: number): Promise<UrlPreviewRow | null>;
  /**
   * Cache a preview (replacing the URL's previous one, whichever worker wrote it); rows expired at or before `now`
   * are deleted on the way, so the table holds at most the previews of the last expiry period.
   */
  putUrlPreview(row: UrlPreviewRow, now: number): Promise<void>;
}

/** One row of the relations table: an event (`eventId`) that relates to `relatesTo` (spec "Relationships"). */
export interface RelationRow {
  eventId: string;
  roomId: string;
  relatesTo: string;
  relType: string;
  /** m.annotation only. */
  key: string | null;
  sender: string;
  type: string;
  stream: number;
}

export interface RelationQuery {
  roomId: string;
  /** The parent event. */
  eventId: string;
  relType?: string;
  eventType?: string;
  /** 'b' newest first below `from`, 'f' oldest first above it (exclusive, as RoomEventQuery). */
  dir: "b" | "f";
  from: number;
  /** Optional exclusive end bound. */
  to?: number;
  limit: number;
  /** 1: direct children only; n: children of children too, up to n levels (recurse). */
  depth: number;
}

/** A thread (spec "Threading"): its root, reply count, latest reply, whether a user replied. */
export interface ThreadSummaryRow {
  rootId: string;
  count: number;
  latestEventId: string;
  latestStream: number;
  /** The asking user sent a reply in the thread. */
  participated: boolean;
}

/**
 * Event relations (content.m.relates_to), recorded by EventStore.persistEvent(s) with the event and dropped when
 * the event is redacted. Reads for /relations, /threads and the bundled aggregations (one query per page).
 */
export interface RelationStore {
  /** Events relating to q.eventId (and, with depth > 1, to those), in q.dir order by stream, up to q.limit. */
  getRelatedEvents(q: RelationQuery): Promise<StoredEvent[]>;
  /** Relation rows of these rel types whose parent is among `parentIds`, ordered by stream. */
  getRelationsOf(parentIds: string[], relTypes: string[]): Promise<RelationRow[]>;
  /** The threads among `rootIds` that have replies (roots without any are absent). */
  getThreadSummaries(rootIds: string[], userId: string): Promise<ThreadSummaryRow[]>;
  /**
   * Thread roots of a room, the most recently replied to first, whose latest reply is below `before`; with
   * `participant`, only threads that user started or replied in.
   */
  getThreads(q: {
    roomId: string;
    before: number;
    limit: number;
    participant?: string;
  }): Promise<{ rootId: string; latestStream: number }[]>;
  /**
   * m.thread replies in these rooms with stream in (after, upto] not sent by `excludeSender`, newest first, up to
   * `limit` (per-thread unread counts).
   */
  getThreadReplies(
    roomIds: string[],
    after: number,
    upto: number,
    excludeSender: string,
    limit: number,
  ): Promise<RelationRow[]>;
  /** Whether `sender` annotated `parentId` with `key` already (an `type` event, not redacted). */
  hasAnnotation(parentId: string, sender: string, type: string, key: string): Promise<boolean>;
}

/** A pusher (spec "Push Notifications": POST /pushers/set), unique by (appId, pushkey, userId). */
export interface PusherRow {
  userId: string;
  /** The device whose access token created it: deleting the device (logout, deactivation) deletes it. */
  deviceId: string | null;
  kind: string;
  appId: string;
  pushkey: string;
  appDisplayName: string;
  deviceDisplayName: string;
  profileTag: string | null;
  lang: string;
  /** The pusher's `data` object (url, format, ...), as given. */
  data: JsonObject;
  /** When the pushkey was last set, in ms. */
  pushkeyTs: number;
}

/** A notification recorded when a user's push rules said `notify` for an event (GET /notifications). */
export interface NotificationRow {
  userId: string;
  roomId: string;
  eventId: string;
  /** The event's stream position: the pagination token and the order (newest first). */
  stream: number;
  ts: number;
  actions: unknown[];
  highlight: boolean;
  profileTag: string | null;
}

/** Pushers and the notifications recorded for users. */
export interface PusherStore {
  /**
   * Insert or replace the user's pusher with this (appId, pushkey); without `append`, the same (appId, pushkey) of
   * other users is removed in the same transaction (spec: pushers/set).
   */
  setPusher(row: PusherRow, append: boolean): Promise<void>;
  /** Returns whether a pusher was deleted. */
  deletePusher(userId: string, appId: string, pushkey: string): Promise<boolean>;
  /** Every pusher with this (appId, pushkey), of any user (a gateway's `rejected` list names them so). */
  deletePushersByKey(appId: string, pushkey: string): Promise<number>;
  getPushers(userId: string): Promise<PusherRow[]>;
  /** Pushers of any of these users, ordered by user. */
  getPushersOfUsers(userIds: string[]): Promise<PusherRow[]>;
  /** Record notifications (one per user; the same (user, event) twice is ignored). */
  addNotifications(rows: NotificationRow[]): Promise<void>;
  /** The user's notifications with stream < before (or all), newest first, at most `limit`. */
  getNotifications(
    userId: string,
    opts: { before?: number; limit: number; onlyHighlight: boolean },
  ): Promise<NotificationRow[]>;
  /** Delete notifications recorded before `ts` (ms); returns how many. */
  deleteNotificationsBefore(ts: number): Promise<number>;
}

/** The event fields full-text search reads (spec "Server Side Search": `keys`), each from one event type. */
export const SEARCH_KEYS = {
  "content.body": "m.room.message",
  "content.name": "m.room.name",
  "content.topic": "m.room.topic",
} as const;
export type SearchKey = keyof typeof SEARCH_KEYS;

/** A room and the stream positions lo..hi (both inclusive) of it a reader may see (service/visibility.ts). */
export interface RoomStreamSpan {
  roomId: string;
  lo: number;
  hi: number;
}

export interface EventSearchQuery {
  /** Lower-cased words (letters and digits only, see searchWords): each must match, as a word prefix. */
  words: string[];
  /** Only events inside these spans (the rooms and ranges history visibility allows). */
  spans: RoomStreamSpan[];
  keys: SearchKey[];
  filter?: EventFilterQuery;
  /** rank: best match first (ties newest first); recent: newest first. */
  orderBy: "rank" | "recent";
  limit: number;
  /** rank: skip this many results. */
  offset?: number;
  /** recent: only events with stream < before. */
  before?: number;
}

export interface SearchHit {
  event: StoredEvent;
  /** Higher is better; comparable only within one backend. */
  rank: number;
}

export interface UserSearchQuery {
  words: string[];
  requester: string;
  /** Every local user, not only those sharing a room with the requester or in a public room. */
  all: boolean;
  limit: number;
}

/**
 * Full-text search over room events (a full-text index kept by the backend as events are written; redacted events
 * leave it) and the user directory.
 */
export interface SearchStore {
  /** Matching, unredacted events of `q.keys`' types in `q.spans`, in `q.orderBy` order, and how many match in all. */
  searchEvents(q: EventSearchQuery): Promise<{ hits: SearchHit[]; count: number }>;
  /**
   * Active users whose user ID localpart or display name has a word starting with each of `q.words`, who share a
   * joined room with the requester or are joined to a public room (join_rule public) unless `q.all`; ordered by
   * user ID, at most `q.limit`.
   */
  searchUsers(q: UserSearchQuery): Promise<UserRow[]>;
}

/** A backend: one object per area, each implementing its interface directly (no forwarding façade). */
export interface Store {
  /** Create/upgrade the schema. Idempotent. */
  init(): Promise<void>;
  close(): Promise<void>;
  /** Backend name for status output: "sqlite" | "postgres". */
  readonly backend: string;
  /** Greatest stream position across every streamed table of every area (0 when empty). */
  getMaxStream(): Promise<number>;
  readonly accounts: AccountStore;
  readonly authTokens: AuthTokenStore;
  readonly rooms: RoomStore;
  readonly events: EventStore;
  /** The room DAG: edges, forward extremities, outliers, per-event state groups (federation). */
  readonly dag: DagStore;
  readonly relations: RelationStore;
  readonly accountData: AccountDataStore;
  readonly ephemeral: EphemeralStore;
  readonly media: MediaStore;
  /** End-to-end encryption: device keys, one-time keys, cross-signing, device lists, to-device (keys-types.ts). */
  readonly keys: KeyStore;
  /** Server-side key backup (keys-types.ts). */
  readonly keyBackup: KeyBackupStore;
  readonly pushers: PusherStore;
  /** Full-text event search and the user directory. */
  readonly search: SearchStore;
  /** Content reports (moderation). */
  readonly reports: ReportStore;
  /** Other servers' signing keys, fetched over federation (server-keys-types.ts). */
  readonly serverKeys: ServerKeyStore;
  /** Federation retry state per remote server (destinations-types.ts). */
  readonly destinations: DestinationStore;
  /** Remote users' device lists, and our users' last device-list change positions (device-lists-types.ts). */
  readonly deviceLists: DeviceListStore;
}
