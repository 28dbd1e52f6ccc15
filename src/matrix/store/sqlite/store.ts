/**
 * The Store on SQLite (node:sqlite): the embedded default. It owns the connection and is composed of one object
 * per area; areas whose SQL reads alike in both dialects come from sql/ over the SqliteSql seam.
 */
import { AmiError } from "../../../core/errors.ts";
import { SqlAccountDataStore } from "../sql/account-data.ts";
import { SqlAccountStore } from "../sql/accounts.ts";
import { SqlAuthTokenStore } from "../sql/auth-tokens.ts";
import { SqlDagStore } from "../sql/dag.ts";
import { SqlDestinationStore } from "../sql/destinations.ts";
import { SqlDeviceListStore } from "../sql/device-lists.ts";
import { SqlEphemeralStore } from "../sql/ephemeral.ts";
import { SqlMediaStore } from "../sql/media.ts";
import { SqlPusherStore } from "../sql/pushers.ts";
import { SqlRelationStore } from "../sql/relations.ts";
import { SqlReportStore } from "../sql/reports.ts";
import { SqlRoomStore } from "../sql/rooms.ts";
import { SqlServerKeyStore } from "../sql/server-keys.ts";
import type { Store } from "../types.ts";
import { SqliteDb, SqliteSql } from "./db.ts";
import { SqliteEventStore } from "./events.ts";
import { SqliteKeyBackupStore } from "./key-backup.ts";
import { SqliteKeyStore } from "./keys.ts";
import { MIGRATIONS } from "./schema.ts";
import { SqliteSearchStore } from "./search.ts";

export class SqliteStore implements Store {
  readonly backend = "sqlite";
  readonly path: string;
  private d: SqliteDb | null = null;
  /** The open connection; areas reach it through this, so each throws once the store is closed. */
  private readonly conn = (): SqliteDb => {
    if (!this.d) throw new AmiError("AMI_UNAVAILABLE", "store is not open");
    return this.d;
  };
  private readonly sql = new SqliteSql(this.conn);
  readonly accounts = new SqlAccountStore(this.sql);
  readonly authTokens = new SqlAuthTokenStore(this.sql);
  readonly rooms = new SqlRoomStore(this.sql);
  readonly events = new SqliteEventStore(this.conn);
  readonly dag = new SqlDagStore(this.sql);
  readonly relations = new SqlRelationStore(this.sql);
  readonly accountData = new SqlAccountDataStore(this.sql);
  readonly ephemeral = new SqlEphemeralStore(this.sql);
  readonly media = new SqlMediaStore(this.sql);
  readonly pushers = new SqlPusherStore(this.sql);
  readonly reports = new SqlReportStore(this.sql);
  readonly serverKeys = new SqlServerKeyStore(this.sql);
  readonly destinations = new SqlDestinationStore(this.sql);
  readonly deviceLists = new SqlDeviceListStore(this.sql);
  readonly keys = new SqliteKeyStore(this.conn);
  readonly keyBackup = new SqliteKeyBackupStore(this.conn);
  readonly search = new SqliteSearchStore(this.conn);

  /** `path` is a file path or ":memory:". */
  constructor(path: string) {
    this.path = path;
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

  async getMaxStream(): Promise<number> {
    const r = this.conn()
      .q(
        `SELECT max(
           coalesce((SELECT max(stream) FROM events), 0),
           coalesce((SELECT max(stream) FROM account_data), 0),
           coalesce((SELECT max(stream) FROM receipts), 0),
           coalesce((SELECT max(stream) FROM presence), 0)) AS m`,
      )
      .get() as any;
    return Math.max(r.m, await this.keys.getMaxKeyStream());
  }
}
