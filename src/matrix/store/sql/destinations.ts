/**
 * DestinationStore for both backends: federation retry state per remote server, and the durable outgoing queues
 * (owed rooms per destination, to-device outbox; destinations-types.ts).
 */
import type { DestinationRow, DestinationStore, OutboxEdu, OwedPdu } from "../destinations-types.ts";
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

const RECORD_OWED = `INSERT INTO federation_destination_rooms (destination, room_id, owed_stream, sent_stream)
  VALUES (?, ?, ?, ?)
  ON CONFLICT (destination, room_id) DO UPDATE SET owed_stream = CASE
    WHEN excluded.owed_stream > federation_destination_rooms.owed_stream THEN excluded.owed_stream
    ELSE federation_destination_rooms.owed_stream END`;

/**
 * The destination of `d` has a member joined to the room now: then every local event after the delivered position
 * is owed to it, recorded or not (the owed position is written after the event, so a crash between the two would
 * otherwise lose the event from the catch-up).
 */
const JOINED = `EXISTS (SELECT 1 FROM memberships m WHERE m.room_id = d.room_id AND m.membership = 'join'
  AND substr(m.user_id, length(m.user_id) - length(d.destination)) = ':' || d.destination)`;

/** LIKE pattern matching a user ID of `server` (its wildcards escaped). */
function onServer(server: string): string {
  return `%:${server.replace(/[\\%_]/g, (c) => `\\${c}`)}`;
}

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

  async recordOwedPdus(destinations: string[], roomId: string, stream: number): Promise<void> {
    if (destinations.length === 0) return;
    await this.#sql.atomic(destinations.map((d) => [RECORD_OWED, [d, roomId, stream, stream - 1]]));
  }

  async markPdusSent(destination: string, rooms: { roomId: string; stream: number }[]): Promise<void> {
    if (rooms.length === 0) return;
    await this.#sql.atomic(
      rooms.map((r) => [
        "UPDATE federation_destination_rooms SET sent_stream = ? WHERE destination = ? AND room_id = ? AND sent_stream < ?",
        [r.stream, destination, r.roomId, r.stream],
      ]),
    );
  }

  async owedPdus(destination: string, localServer: string, limit: number): Promise<OwedPdu[]> {
    const rows = await this.#sql.all(
      `SELECT e.room_id, e.stream, e.event_id, e.pdu FROM federation_destination_rooms d
       JOIN events e ON e.room_id = d.room_id AND e.stream > d.sent_stream
       WHERE d.destination = ? AND e.sender LIKE ? ESCAPE '\\' AND e.state_only = 0
         AND (e.stream <= d.owed_stream OR ${JOINED})
       ORDER BY e.stream LIMIT ?`,
      [destination, onServer(localServer), limit],
    );
    return rows.map((r) => ({
      roomId: r.room_id,
      stream: Number(r.stream),
      eventId: r.event_id,
      pdu: JSON.parse(r.pdu),
    }));
  }

  async destinationsOwed(localServer?: string): Promise<string[]> {
    const rows =
      localServer === undefined
        ? await this.#sql.all(
            "SELECT DISTINCT destination FROM federation_destination_rooms WHERE sent_stream < owed_stream ORDER BY destination",
            [],
          )
        : await this.#sql.all(
            `SELECT DISTINCT d.destination FROM federation_destination_rooms d
             WHERE d.sent_stream < d.owed_stream OR (${JOINED} AND EXISTS (SELECT 1 FROM events e
               WHERE e.room_id = d.room_id AND e.stream > d.sent_stream AND e.sender LIKE ? ESCAPE '\\'
                 AND e.state_only = 0))
             ORDER BY d.destination`,
            [onServer(localServer)],
          );
    return rows.map((r) => r.destination);
  }

  async addOutboxEdu(r: OutboxEdu): Promise<void> {
    await this.#sql.run("INSERT INTO federation_outbox (destination, seq, edu) VALUES (?, ?, ?)", [
      r.destination,
      r.seq,
      JSON.stringify(r.edu),
    ]);
  }

  async deleteOutboxEdus(destination: string, seqs: number[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.#sql.atomic(
      seqs.map((seq) => ["DELETE FROM federation_outbox WHERE destination = ? AND seq = ?", [destination, seq]]),
    );
  }

  async outboxHolders(among: string[], atMost: number): Promise<{ count: number; holding: string[] }> {
    // One index probe per destination (the primary key starts with it), however many EDUs each one holds.
    const counted = await this.#sql.all(
      `WITH RECURSIVE d(destination, n) AS (
         SELECT (SELECT MIN(destination) FROM federation_outbox), 1
         UNION ALL
         SELECT (SELECT MIN(o.destination) FROM federation_outbox o WHERE o.destination > d.destination), d.n + 1
         FROM d WHERE d.destination IS NOT NULL AND d.n <= ?
       )
       SELECT COUNT(destination) AS count FROM d`,
      [atMost],
    );
    const holding =
      among.length === 0
        ? []
        : await this.#sql.all(
            `SELECT DISTINCT destination FROM federation_outbox WHERE destination IN (${among.map(() => "?").join(", ")})`,
            among,
          );
    return { count: Number(counted[0]?.count ?? 0), holding: holding.map((r) => r.destination) };
  }

  async listOutbox(): Promise<OutboxEdu[]> {
    const rows = await this.#sql.all(
      "SELECT destination, seq, edu FROM federation_outbox ORDER BY destination, seq",
      [],
    );
    return rows.map((r) => ({ destination: r.destination, seq: Number(r.seq), edu: JSON.parse(r.edu) }));
  }
}
