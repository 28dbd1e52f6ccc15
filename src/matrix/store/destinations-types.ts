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

export interface DestinationStore extends DestinationQueueStore {
  /** Insert or replace the row of `row.destination`. */
  putDestination(row: DestinationRow): Promise<void>;
  /** One destination's row, or null. */
  getDestination(destination: string): Promise<DestinationRow | null>;
  /** Every destination known, by name (for ops and the sender's start-up). */
  listDestinations(): Promise<DestinationRow[]>;
}

/** A local event owed to a destination by the catch-up (read from the room's timeline). */
export interface OwedPdu {
  roomId: string;
  stream: number;
  eventId: string;
  pdu: Record<string, unknown>;
}

/** A to-device EDU waiting in a destination's durable outbox. */
export interface OutboxEdu {
  destination: string;
  /** Its order in the destination's outbox (assigned by the sender, increasing). */
  seq: number;
  edu: Record<string, unknown>;
}

/**
 * Durable outgoing queues (federation/sender.ts). PDUs are not copied: per (destination, room) the store keeps the
 * stream position of the newest local event queued for it and of the newest one delivered, and the catch-up reads
 * the room's local events between the two from the timeline (Synapse's destination_rooms +
 * last_successful_stream_ordering, per room). To-device EDUs are end-to-end messages found nowhere else, so they
 * are kept whole until delivered.
 */
export interface DestinationQueueStore {
  /**
   * Local events of `roomId` up to `stream` are owed to each destination. A destination new to the room is owed
   * from this event on (its earlier events were never meant for it).
   */
  recordOwedPdus(destinations: string[], roomId: string, stream: number): Promise<void>;
  /** The room's events up to each `stream` were delivered to `destination` (positions never go back). */
  markPdusSent(destination: string, rooms: { roomId: string; stream: number }[]): Promise<void>;
  /**
   * The oldest `limit` events still owed to `destination`: events of its owed rooms after the delivered position,
   * up to the owed one (or any, in a room where a user of `destination` is joined now: the owed position is
   * written after the event, so one persisted just before a crash may be missing from it), sent by a user of
   * `localServer`, in stream order.
   */
  owedPdus(destination: string, localServer: string, limit: number): Promise<OwedPdu[]>;
  /**
   * Destinations owed any event (the sender's start-up catches them up). With `localServer`, also those with a
   * user joined to one of their rooms holding an event of `localServer` after the delivered position.
   */
  destinationsOwed(localServer?: string): Promise<string[]>;
  /** Keep a to-device EDU until delivered. */
  addOutboxEdu(row: OutboxEdu): Promise<void>;
  /** Forget delivered (or dropped) outbox EDUs. */
  deleteOutboxEdus(destination: string, seqs: number[]): Promise<void>;
  /** Every destination's outbox, by destination then seq. */
  listOutbox(): Promise<OutboxEdu[]>;
  /**
   * Destinations holding outbox EDUs: how many (counting stops past `atMost`) and which of `among` are. What a worker
   * that does not send checks the to-device destination cap with (federation/sender.ts admitToDevice).
   */
  outboxHolders(among: string[], atMost: number): Promise<{ count: number; holding: string[] }>;
}
