/**
 * The Store on PostgreSQL (pg Pool). It owns the pool and is composed of one object per area; areas whose SQL
 * reads alike in both dialects come from sql/ over the PgSql seam. Every write is one statement or one
 * BEGIN..COMMIT: atomic.
 */
import { AmiError } from "../../../core/errors.ts";
import { createLogger, type Logger } from "../../../core/logger.ts";
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
import { PgDb, PgSql } from "./db.ts";
import { PostgresEventStore } from "./events.ts";
import { PostgresKeyBackupStore } from "./key-backup.ts";
import { PostgresKeyStore } from "./keys.ts";
import { MIGRATIONS } from "./schema.ts";
import { PostgresSearchStore } from "./search.ts";

export class PostgresStore implements Store {
  readonly backend = "postgres";
  private readonly url: string;
  private readonly logger: Logger;
  private d: PgDb | null = null;
  /** The open pool; areas reach it through this, so each throws once the store is closed. */
  private readonly conn = (): PgDb => {
    if (!this.d) throw new AmiError("AMI_UNAVAILABLE", "store is not open");
    return this.d;
  };
  private readonly sql = new PgSql(this.conn);
  readonly accounts = new SqlAccountStore(this.sql);
  readonly authTokens = new SqlAuthTokenStore(this.sql);
  readonly rooms = new SqlRoomStore(this.sql);
  readonly events = new PostgresEventStore(this.conn);
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
  readonly keys = new PostgresKeyStore(this.conn);
  readonly keyBackup = new PostgresKeyBackupStore(this.conn);
  readonly search = new PostgresSearchStore(this.conn);

  constructor(url: string, opts: { logger?: Logger } = {}) {
    this.url = url;
    this.logger = opts.logger ?? createLogger({ base: { component: "store" } });
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

  async getMaxStream(): Promise<number> {
    const [r, keys] = await Promise.all([
      this.conn().row(
        `SELECT GREATEST(
           coalesce((SELECT max(stream) FROM events), 0),
           coalesce((SELECT max(stream) FROM account_data), 0),
           coalesce((SELECT max(stream) FROM receipts), 0),
           coalesce((SELECT max(stream) FROM presence), 0)) AS m`,
      ),
      this.keys.getMaxKeyStream(),
    ]);
    return Math.max(r.m, keys);
  }
}
