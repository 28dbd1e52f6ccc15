/**
 * The DestinationStore: federation retry state per remote server (federation/sender.ts), persisted so that a
 * restart neither forgets a server is dead (and hammers it) nor forgets when it last answered.
 */

export interface DestinationRow {
  /** The remote server name. */
  destination: string;
  /** When a transaction to it last succeeded (ms), null if never. */
  lastSuccessTs: number | null;
  /** Consecutive failed transactions since the last success (0: healthy). */
  failures: number;
  /** The current backoff interval (ms), 0 when healthy; it doubles per failure up to the ceiling. */
  retryIntervalMs: number;
  /** Do not try it before this (ms); 0 when healthy. */
  nextRetryTs: number;
}

export interface DestinationStore {
  /** Insert or replace the row of `row.destination`. */
  putDestination(row: DestinationRow): Promise<void>;
  /** One destination's row, or null. */
  getDestination(destination: string): Promise<DestinationRow | null>;
  /** Every destination known, by name (for ops and the sender's start-up). */
  listDestinations(): Promise<DestinationRow[]>;
}
