/** The Store on PostgreSQL (pg Pool). Every write method is one statement or one BEGIN..COMMIT: atomic. */
import { AmiError } from "../../../core/errors.ts";
import { createLogger, type Logger } from "../../../core/logger.ts";
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
import { isUniqueViolation, PgDb } from "./db.ts";
import * as ev from "./events.ts";
import { PostgresKeyStore } from "./keys.ts";
import { MIGRATIONS } from "./schema.ts";

export class PostgresStore implements Store {
  readonly backend = "postgres";
  /** End-to-end-encryption tables (keys.ts). */
  readonly keys = new PostgresKeyStore(() => this.db);
  private readonly url: string;
  private readonly logger: Logger;
  private d: PgDb | null = null;

  constructor(url: string, opts: { logger?: Logger } = {}) {
    this.url = url;
    this.logger = opts.logger ?? createLogger({ base: { component: "store" } });
  }

  private get db(): PgDb {
    if (!this.d) throw new AmiError("AMI_UNAVAILABLE", "store is not open");
    return this.d;
  }

  async init(): Promise<void> {
    if (this.d) return;
    const d = new PgDb(this.url, this.logger);
    try {
      await d.migrate(MIGRATIONS);
    } catch (e) {
      await d.end();
      if (e instanceof AmiError) throw e;
      throw new AmiError("AMI_UNAVAILABLE", `PostgreSQL at ${d.where}: ${(e as Error).message}`);
    }
    this.d = d;
  }

  async close(): Promise<void> {
    const d = this.d;
    this.d = null;
    await d?.end();
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
      await this.db.query(
        "INSERT INTO rooms (room_id, version, creator, created_ts, is_public) VALUES ($1, $2, $3, $4, $5)",
        [r.roomId, r.version, r.creator, r.createdTs, r.isPublic],
      );
    } catch (e) {
      if (isUniqueViolation(e)) throw new AmiError("M_ROOM_IN_USE", "Room ID already exists.");
      throw e;
    }
  }

  async getRoom(roomId: string): Promise<RoomRow | null> {
    const r = await this.db.row("SELECT * FROM rooms WHERE room_id = $1", [roomId]);
    return r ? roomFromRow(r) : null;
  }

  async setRoomPublic(roomId: string, isPublic: boolean): Promise<void> {
    await this.db.query("UPDATE rooms SET is_public = $2 WHERE room_id = $1", [roomId, isPublic]);
  }

  async listPublicRoomIds(): Promise<string[]> {
    return (await this.db.rows("SELECT room_id FROM rooms WHERE is_public ORDER BY room_id")).map((r) => r.room_id);
  }

  async listRooms(opts: { from?: string; limit: number }): Promise<RoomRow[]> {
    const rows = await this.db.rows("SELECT * FROM rooms WHERE room_id > $1 ORDER BY room_id LIMIT $2", [
      opts.from ?? "",
      Math.max(0, opts.limit),
    ]);
    return rows.map(roomFromRow);
  }

  async countRooms(): Promise<number> {
    return (await this.db.row("SELECT count(*) AS n FROM rooms")).n;
  }

  // ---- events and state ----
  async persistEvent(e: NewEvent): Promise<void> {
    return ev.persistEvent(this.db, e);
  }
  /** Not (yet) in the Store interface: several events in one transaction, for a group-committing writer. */
  async persistEvents(events: NewEvent[]): Promise<void> {
    return ev.persistEvents(this.db, events);
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
    const [events, keys] = await Promise.all([ev.getMaxStream(this.db), this.keys.getMaxKeyStream()]);
    return Math.max(events, keys);
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
    const r = await this.db.query(
      "INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3) ON CONFLICT (alias) DO NOTHING",
      [alias, roomId, creator],
    );
    return r.rowCount === 1;
  }

  async getAlias(alias: string): Promise<{ roomId: string; creator: string } | null> {
    const r = await this.db.row("SELECT room_id, creator FROM room_aliases WHERE alias = $1", [alias]);
    return r ? { roomId: r.room_id, creator: r.creator } : null;
  }

  async deleteAlias(alias: string): Promise<boolean> {
    return (await this.db.query("DELETE FROM room_aliases WHERE alias = $1", [alias])).rowCount === 1;
  }

  async getAliasesForRoom(roomId: string): Promise<string[]> {
    const rows = await this.db.rows("SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias", [roomId]);
    return rows.map((r) => r.alias);
  }

  // ---- account data, receipts, presence ----
  async setAccountData(row: AccountDataRow): Promise<void> {
    await this.db.query(
      `INSERT INTO account_data (user_id, room_id, type, content, stream) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = EXCLUDED.content, stream = EXCLUDED.stream`,
      [row.userId, row.roomId ?? NONE, row.type, JSON.stringify(row.content), row.stream],
    );
  }

  async getAccountData(userId: string, roomId: string | null, type: string): Promise<AccountDataRow | null> {
    const r = await this.db.row("SELECT * FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3", [
      userId,
      roomId ?? NONE,
      type,
    ]);
    return r ? accountDataFromRow(r) : null;
  }

  async getAccountDataSince(userId: string, since: number): Promise<AccountDataRow[]> {
    const rows = await this.db.rows("SELECT * FROM account_data WHERE user_id = $1 AND stream > $2 ORDER BY stream", [
      userId,
      since,
    ]);
    return rows.map(accountDataFromRow);
  }

  async setReceipt(row: ReceiptRow): Promise<void> {
    await this.db.query(
      `INSERT INTO receipts (room_id, user_id, type, thread_id, event_id, ts, stream) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (room_id, user_id, type, thread_id) DO UPDATE SET event_id = EXCLUDED.event_id, ts = EXCLUDED.ts,
         stream = EXCLUDED.stream`,
      [row.roomId, row.userId, row.type, row.threadId ?? NONE, row.eventId, row.ts, row.stream],
    );
  }

  async getReceiptsSince(roomIds: string[], since: number): Promise<ReceiptRow[]> {
    if (roomIds.length === 0) return [];
    const rows = await this.db.rows(
      "SELECT * FROM receipts WHERE room_id = ANY($1::text[]) AND stream > $2 ORDER BY stream",
      [roomIds, since],
    );
    return rows.map(receiptFromRow);
  }

  async getReceipt(roomId: string, userId: string, type: string, threadId: string | null): Promise<ReceiptRow | null> {
    const r = await this.db.row(
      "SELECT * FROM receipts WHERE room_id = $1 AND user_id = $2 AND type = $3 AND thread_id = $4",
      [roomId, userId, type, threadId ?? NONE],
    );
    return r ? receiptFromRow(r) : null;
  }

  async setPresence(row: PresenceRow): Promise<void> {
    await this.db.query(
      `INSERT INTO presence (user_id, presence, status_msg, last_active_ts, stream) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (user_id) DO UPDATE SET presence = EXCLUDED.presence, status_msg = EXCLUDED.status_msg,
         last_active_ts = EXCLUDED.last_active_ts, stream = EXCLUDED.stream`,
      [row.userId, row.presence, row.statusMsg, row.lastActiveTs, row.stream],
    );
  }

  async getPresence(userId: string): Promise<PresenceRow | null> {
    const r = await this.db.row("SELECT * FROM presence WHERE user_id = $1", [userId]);
    return r ? presenceFromRow(r) : null;
  }

  async getPresenceSince(userIds: string[], since: number): Promise<PresenceRow[]> {
    if (userIds.length === 0) return [];
    const rows = await this.db.rows(
      "SELECT * FROM presence WHERE user_id = ANY($1::text[]) AND stream > $2 ORDER BY stream",
      [userIds, since],
    );
    return rows.map(presenceFromRow);
  }

  // ---- filters and media ----
  async createFilter(userId: string, filter: Record<string, any>): Promise<string> {
    const r = await this.db.row("INSERT INTO filters (user_id, filter) VALUES ($1, $2) RETURNING filter_id", [
      userId,
      JSON.stringify(filter),
    ]);
    return String(r.filter_id);
  }

  async getFilter(userId: string, filterId: string): Promise<Record<string, any> | null> {
    const id = parseFilterId(filterId);
    if (id === null) return null;
    const r = await this.db.row("SELECT filter FROM filters WHERE filter_id = $1 AND user_id = $2", [id, userId]);
    return r ? JSON.parse(r.filter) : null;
  }

  async putMedia(m: MediaRow): Promise<void> {
    try {
      await this.db.query(
        `INSERT INTO media (media_id, uploader, content_type, filename, size, sha256, created_ts)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [m.mediaId, m.uploader, m.contentType, m.filename, m.size, m.sha256, m.createdTs],
      );
    } catch (e) {
      if (isUniqueViolation(e)) throw new AmiError("M_CANNOT_OVERWRITE_MEDIA", "Media ID already exists.");
      throw e;
    }
  }

  async getMedia(mediaId: string): Promise<MediaRow | null> {
    const r = await this.db.row("SELECT * FROM media WHERE media_id = $1", [mediaId]);
    return r ? mediaFromRow(r) : null;
  }
}
