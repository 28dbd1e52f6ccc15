/** The Store on SQLite (node:sqlite): the embedded default. Work is synchronous inside async methods. */
import { AmiError } from "../../../core/errors.ts";
import { parseFilterId } from "../common.ts";
import { accountDataFromRow, mediaFromRow, NONE, presenceFromRow, receiptFromRow, roomFromRow } from "../rows.ts";
import type {
  AccountDataRow,
  DeviceRow,
  EventFilterQuery,
  MediaRow,
  MembershipRow,
  NewEvent,
  PresenceRow,
  ReceiptRow,
  RegistrationTokenRow,
  RoomAt,
  RoomEventQuery,
  RoomRow,
  RoomStateKey,
  RoomStreamRange,
  RoomStreamWindow,
  Store,
  StoredEvent,
  TokenRow,
  UserPatch,
  UserRow,
} from "../types.ts";
import * as ac from "./accounts.ts";
import * as batch from "./batch.ts";
import { isUniqueViolation, SqliteDb } from "./db.ts";
import * as ev from "./events.ts";
import { SqliteKeyStore } from "./keys.ts";
import { MIGRATIONS } from "./schema.ts";

const IN_JSON = "(SELECT value FROM json_each(?))";
const b = (v: boolean): number => (v ? 1 : 0);

export class SqliteStore implements Store {
  readonly backend = "sqlite";
  /** End-to-end-encryption tables (keys.ts). */
  readonly keys = new SqliteKeyStore(() => this.db);
  readonly path: string;
  private d: SqliteDb | null = null;

  /** `path` is a file path or ":memory:". */
  constructor(path: string) {
    this.path = path;
  }

  private get db(): SqliteDb {
    if (!this.d) throw new AmiError("AMI_UNAVAILABLE", "store is not open");
    return this.d;
  }

  async init(): Promise<void> {
    if (this.d) return;
    const d = new SqliteDb(this.path);
    try {
      d.migrate(MIGRATIONS);
    } catch (e) {
      d.close();
      throw e;
    }
    this.d = d;
  }

  async close(): Promise<void> {
    this.d?.close();
    this.d = null;
  }

  // ---- users, devices, tokens, registration tokens (accounts.ts) ----
  async createUser(u: UserRow): Promise<void> {
    return ac.createUser(this.db, u);
  }
  async getUser(userId: string): Promise<UserRow | null> {
    return ac.getUser(this.db, userId);
  }
  async listUsers(opts: { from?: string; limit: number; includeDeactivated?: boolean }): Promise<UserRow[]> {
    return ac.listUsers(this.db, opts);
  }
  async updateUser(userId: string, patch: UserPatch): Promise<void> {
    return ac.updateUser(this.db, userId, patch);
  }
  async countUsers(): Promise<number> {
    return ac.countUsers(this.db);
  }
  async upsertDevice(x: DeviceRow): Promise<void> {
    return ac.upsertDevice(this.db, x);
  }
  async getDevice(userId: string, deviceId: string): Promise<DeviceRow | null> {
    return ac.getDevice(this.db, userId, deviceId);
  }
  async listDevices(userId: string): Promise<DeviceRow[]> {
    return ac.listDevices(this.db, userId);
  }
  async updateDevice(
    userId: string,
    deviceId: string,
    patch: Partial<Pick<DeviceRow, "displayName" | "lastSeenTs" | "lastSeenIp">>,
  ): Promise<void> {
    return ac.updateDevice(this.db, userId, deviceId, patch);
  }
  async deleteDevice(userId: string, deviceId: string): Promise<void> {
    return ac.deleteDevice(this.db, userId, deviceId);
  }
  async createToken(t: TokenRow): Promise<void> {
    return ac.createToken(this.db, t);
  }
  async getToken(tokenHash: string): Promise<TokenRow | null> {
    return ac.getToken(this.db, tokenHash);
  }
  async deleteToken(tokenHash: string): Promise<void> {
    return ac.deleteToken(this.db, tokenHash);
  }
  async deleteTokensForUser(userId: string, exceptDeviceId?: string): Promise<void> {
    return ac.deleteTokensForUser(this.db, userId, exceptDeviceId);
  }
  async createRegistrationToken(t: RegistrationTokenRow): Promise<void> {
    return ac.createRegistrationToken(this.db, t);
  }
  async getRegistrationToken(token: string): Promise<RegistrationTokenRow | null> {
    return ac.getRegistrationToken(this.db, token);
  }
  async consumeRegistrationToken(token: string, now: number): Promise<boolean> {
    return ac.consumeRegistrationToken(this.db, token, now);
  }
  async listRegistrationTokens(): Promise<RegistrationTokenRow[]> {
    return ac.listRegistrationTokens(this.db);
  }
  async updateRegistrationToken(
    token: string,
    patch: Partial<Pick<RegistrationTokenRow, "usesAllowed" | "expiryTs">>,
  ): Promise<boolean> {
    return ac.updateRegistrationToken(this.db, token, patch);
  }
  async deleteRegistrationToken(token: string): Promise<void> {
    return ac.deleteRegistrationToken(this.db, token);
  }

  // ---- rooms ----
  async createRoom(r: RoomRow): Promise<void> {
    try {
      this.db.run(
        "INSERT INTO rooms (room_id, version, creator, created_ts, is_public) VALUES (?, ?, ?, ?, ?)",
        r.roomId,
        r.version,
        r.creator,
        r.createdTs,
        b(r.isPublic),
      );
    } catch (e) {
      if (isUniqueViolation(e)) throw new AmiError("M_ROOM_IN_USE", "Room ID already exists.");
      throw e;
    }
  }

  async getRoom(roomId: string): Promise<RoomRow | null> {
    const r = this.db.q("SELECT * FROM rooms WHERE room_id = ?").get(roomId);
    return r ? roomFromRow(r) : null;
  }

  async setRoomPublic(roomId: string, isPublic: boolean): Promise<void> {
    this.db.run("UPDATE rooms SET is_public = ? WHERE room_id = ?", b(isPublic), roomId);
  }

  async listPublicRoomIds(): Promise<string[]> {
    return this.db
      .q("SELECT room_id FROM rooms WHERE is_public = 1 ORDER BY room_id")
      .all()
      .map((r: any) => r.room_id);
  }

  async listRooms(opts: { from?: string; limit: number }): Promise<RoomRow[]> {
    return this.db
      .q("SELECT * FROM rooms WHERE room_id > ? ORDER BY room_id LIMIT ?")
      .all(opts.from ?? "", Math.max(0, opts.limit))
      .map(roomFromRow);
  }

  async countRooms(): Promise<number> {
    return (this.db.q("SELECT count(*) AS n FROM rooms").get() as any).n;
  }

  // ---- events and state ----
  async persistEvent(e: NewEvent): Promise<void> {
    ev.persistEvents(this.db, [e]);
  }
  /** Not (yet) in the Store interface: several events in one transaction, for a group-committing writer. */
  async persistEvents(events: NewEvent[]): Promise<void> {
    ev.persistEvents(this.db, events);
  }
  async getEvent(eventId: string): Promise<StoredEvent | null> {
    return ev.getEvent(this.db, eventId);
  }
  async getEvents(eventIds: string[]): Promise<StoredEvent[]> {
    return ev.getEvents(this.db, eventIds);
  }
  async getReplacedState(streams: number[]): Promise<Map<number, StoredEvent>> {
    return ev.getReplacedState(this.db, streams);
  }
  async getTxnEvent(userId: string, deviceId: string, scope: string, txnId: string): Promise<string | null> {
    return ev.getTxnEvent(this.db, userId, deviceId, scope, txnId);
  }
  async getLatestEvent(roomId: string): Promise<StoredEvent | null> {
    return ev.getLatestEvent(this.db, roomId);
  }
  async getCurrentState(roomId: string): Promise<StoredEvent[]> {
    return ev.getCurrentState(this.db, roomId);
  }
  async getCurrentStateEvent(roomId: string, type: string, stateKey: string): Promise<StoredEvent | null> {
    return ev.getCurrentStateEvent(this.db, roomId, type, stateKey);
  }
  async getStateAt(roomId: string, stream: number, types?: string[]): Promise<StoredEvent[]> {
    return ev.getStateAt(this.db, roomId, stream, types);
  }
  async getMembership(roomId: string, userId: string): Promise<MembershipRow | null> {
    return ev.getMembership(this.db, roomId, userId);
  }
  async getRoomsForUser(userId: string): Promise<MembershipRow[]> {
    return ev.getRoomsForUser(this.db, userId);
  }
  async getMembers(roomId: string, membership?: string): Promise<MembershipRow[]> {
    return ev.getMembers(this.db, roomId, membership);
  }
  async getRoomEvents(q: RoomEventQuery): Promise<StoredEvent[]> {
    return ev.getRoomEvents(this.db, q);
  }
  async getRoomMaxStreams(roomIds: string[]): Promise<Map<string, number>> {
    return ev.getRoomMaxStreams(this.db, roomIds);
  }
  async countEvents(
    roomId: string,
    afterStream: number,
    uptoStream: number,
    excludeSender: string,
    types: string[],
  ): Promise<number> {
    return ev.countEvents(this.db, roomId, afterStream, uptoStream, excludeSender, types);
  }
  async getMaxStream(): Promise<number> {
    return Math.max(ev.getMaxStream(this.db), await this.keys.getMaxKeyStream());
  }

  // ---- batched reads (batch.ts) ----
  async getLatestEventsPerRoom(
    windows: RoomStreamWindow[],
    limit: number,
    filter?: EventFilterQuery,
  ): Promise<StoredEvent[][]> {
    return batch.getLatestEventsPerRoom(this.db, windows, limit, filter);
  }
  async getStatesAt(points: RoomAt[], types?: string[]): Promise<StoredEvent[][]> {
    return batch.getStatesAt(this.db, points, types);
  }
  async getStateHistories(keys: RoomStateKey[]): Promise<StoredEvent[][]> {
    return batch.getStateHistories(this.db, keys);
  }
  async getMembersOfRooms(roomIds: string[]): Promise<Map<string, MembershipRow[]>> {
    return batch.getMembersOfRooms(this.db, roomIds);
  }
  async countEventsPerRoom(ranges: RoomStreamRange[], excludeSender: string, types: string[]): Promise<number[]> {
    return batch.countEventsPerRoom(this.db, ranges, excludeSender, types);
  }
  async getUserReceipts(userId: string, roomIds: string[]): Promise<ReceiptRow[]> {
    return batch.getUserReceipts(this.db, userId, roomIds);
  }
  async getReceiptsOfUsers(userIds: string[], roomIds: string[]): Promise<ReceiptRow[]> {
    return batch.getReceiptsOfUsers(this.db, userIds, roomIds);
  }
  async getUsers(userIds: string[]): Promise<UserRow[]> {
    return batch.getUsers(this.db, userIds);
  }
  async getAccountDataOfUsers(userIds: string[], roomId: string | null, type: string): Promise<AccountDataRow[]> {
    return batch.getAccountDataOfUsers(this.db, userIds, roomId, type);
  }

  // ---- room aliases ----
  async createAlias(alias: string, roomId: string, creator: string): Promise<boolean> {
    const r = this.db.run(
      "INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?) ON CONFLICT (alias) DO NOTHING",
      alias,
      roomId,
      creator,
    );
    return Number(r.changes) === 1;
  }

  async getAlias(alias: string): Promise<{ roomId: string; creator: string } | null> {
    const r = this.db.q("SELECT room_id, creator FROM room_aliases WHERE alias = ?").get(alias) as any;
    return r ? { roomId: r.room_id, creator: r.creator } : null;
  }

  async deleteAlias(alias: string): Promise<boolean> {
    return Number(this.db.run("DELETE FROM room_aliases WHERE alias = ?", alias).changes) === 1;
  }

  async getAliasesForRoom(roomId: string): Promise<string[]> {
    return this.db
      .q("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias")
      .all(roomId)
      .map((r: any) => r.alias);
  }

  // ---- account data, receipts, presence ----
  async setAccountData(row: AccountDataRow): Promise<void> {
    this.db.run(
      `INSERT INTO account_data (user_id, room_id, type, content, stream) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, stream = excluded.stream`,
      row.userId,
      row.roomId ?? NONE,
      row.type,
      JSON.stringify(row.content),
      row.stream,
    );
  }

  async getAccountData(userId: string, roomId: string | null, type: string): Promise<AccountDataRow | null> {
    const r = this.db
      .q("SELECT * FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?")
      .get(userId, roomId ?? NONE, type);
    return r ? accountDataFromRow(r) : null;
  }

  async getAccountDataSince(userId: string, since: number): Promise<AccountDataRow[]> {
    return this.db
      .q("SELECT * FROM account_data WHERE user_id = ? AND stream > ? ORDER BY stream")
      .all(userId, since)
      .map(accountDataFromRow);
  }

  async setReceipt(row: ReceiptRow): Promise<void> {
    this.db.run(
      `INSERT INTO receipts (room_id, user_id, type, thread_id, event_id, ts, stream) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (room_id, user_id, type, thread_id) DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts,
           stream = excluded.stream`,
      row.roomId,
      row.userId,
      row.type,
      row.threadId ?? NONE,
      row.eventId,
      row.ts,
      row.stream,
    );
  }

  async getReceiptsSince(roomIds: string[], since: number): Promise<ReceiptRow[]> {
    if (roomIds.length === 0) return [];
    return this.db
      .q(`SELECT * FROM receipts WHERE room_id IN ${IN_JSON} AND stream > ? ORDER BY stream`)
      .all(JSON.stringify(roomIds), since)
      .map(receiptFromRow);
  }

  async getReceipt(roomId: string, userId: string, type: string, threadId: string | null): Promise<ReceiptRow | null> {
    const r = this.db
      .q("SELECT * FROM receipts WHERE room_id = ? AND user_id = ? AND type = ? AND thread_id = ?")
      .get(roomId, userId, type, threadId ?? NONE);
    return r ? receiptFromRow(r) : null;
  }

  async setPresence(row: PresenceRow): Promise<void> {
    this.db.run(
      `INSERT INTO presence (user_id, presence, status_msg, last_active_ts, stream) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, status_msg = excluded.status_msg,
           last_active_ts = excluded.last_active_ts, stream = excluded.stream`,
      row.userId,
      row.presence,
      row.statusMsg,
      row.lastActiveTs,
      row.stream,
    );
  }

  async getPresence(userId: string): Promise<PresenceRow | null> {
    const r = this.db.q("SELECT * FROM presence WHERE user_id = ?").get(userId);
    return r ? presenceFromRow(r) : null;
  }

  async getPresenceSince(userIds: string[], since: number): Promise<PresenceRow[]> {
    if (userIds.length === 0) return [];
    return this.db
      .q(`SELECT * FROM presence WHERE user_id IN ${IN_JSON} AND stream > ? ORDER BY stream`)
      .all(JSON.stringify(userIds), since)
      .map(presenceFromRow);
  }

  // ---- filters and media ----
  async createFilter(userId: string, filter: Record<string, any>): Promise<string> {
    const r = this.db.run("INSERT INTO filters (user_id, filter) VALUES (?, ?)", userId, JSON.stringify(filter));
    return String(r.lastInsertRowid);
  }

  async getFilter(userId: string, filterId: string): Promise<Record<string, any> | null> {
    const id = parseFilterId(filterId);
    if (id === null) return null;
    const r = this.db.q("SELECT filter FROM filters WHERE filter_id = ? AND user_id = ?").get(id, userId) as any;
    return r ? JSON.parse(r.filter) : null;
  }

  async putMedia(m: MediaRow): Promise<void> {
    try {
      this.db.run(
        `INSERT INTO media (media_id, uploader, content_type, filename, size, sha256, created_ts)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        m.mediaId,
        m.uploader,
        m.contentType,
        m.filename,
        m.size,
        m.sha256,
        m.createdTs,
      );
    } catch (e) {
      if (isUniqueViolation(e)) throw new AmiError("M_CANNOT_OVERWRITE_MEDIA", "Media ID already exists.");
      throw e;
    }
  }

  async getMedia(mediaId: string): Promise<MediaRow | null> {
    const r = this.db.q("SELECT * FROM media WHERE media_id = ?").get(mediaId);
    return r ? mediaFromRow(r) : null;
  }
}
