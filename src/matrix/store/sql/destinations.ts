/** DestinationStore for both backends: federation retry state per remote server (destinations-types.ts). */
import type { DestinationRow, DestinationStore } from "../destinations-types.ts";
import type { Sql } from "../sql.ts";

function fromRow(r: any): DestinationRow {
  return {
    destination: r.destination,
    lastSuccessTs: r.last_success_ts === null ? null : Number(r.last_success_ts),
    failures: Number(r.failures),
    retryIntervalMs: Number(r.retry_interval_ms),
    nextRetryTs: Number(r.next_retry_ts),
  };
}

const UPSERT = `INSERT INTO federation_destinations (destination, last_success_ts, failures, retry_interval_ms, next_retry_ts)
  VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (destination) DO UPDATE SET last_success_ts = excluded.last_success_ts, failures = excluded.failures,
    retry_interval_ms = excluded.retry_interval_ms, next_retry_ts = excluded.next_retry_ts`;

export class SqlDestinationStore implements DestinationStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async putDestination(r: DestinationRow): Promise<void> {
    await this.#sql.atomic([[UPSERT, [r.destination, r.lastSuccessTs, r.failures, r.retryIntervalMs, r.nextRetryTs]]]);
  }

  async getDestination(destination: string): Promise<DestinationRow | null> {
    const rows = await this.#sql.all("SELECT * FROM federation_destinations WHERE destination = ?", [destination]);
    return rows.length ? fromRow(rows[0]) : null;
  }

  async listDestinations(): Promise<DestinationRow[]> {
    const rows = await this.#sql.all("SELECT * FROM federation_destinations ORDER BY destination", []);
    return rows.map(fromRow);
  }
}
