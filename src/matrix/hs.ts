/**
 * The homeserver context handed to every handler and service: config, store and the services.
 * Services receive the Homeserver in their constructor (no global singletons). The composition root
 * is homeserver.ts.
 */

import type { CasStore } from "../cas/types.ts";
import type { MatrixConfig } from "../config.ts";
import type { Logger } from "../core/logger.ts";
import type { Cluster } from "./cluster/index.ts";
import type { SigningKey } from "./events/signing.ts";
import type { ClientEvent, EventContent, JsonObject } from "./events/types.ts";
import type { PartialStateResync } from "./federation/partial-state.ts";
import type { PduIn } from "./federation/pdu-in.ts";
import type { Federation } from "./federation/service.ts";
import type { Metrics } from "./metrics.ts";
import type { Revocation } from "./service/auth.ts";
import type { StateResolver } from "./service/event-state.ts";
import type { MediaService } from "./service/media.ts";
import type { Requester } from "./service/requester.ts";
import type { RoomHead } from "./service/room-head.ts";
import type { NewEvent, Store, StoredEvent } from "./store/types.ts";
import type { StreamWriter } from "./stream.ts";

/** Wakes long-polling /sync requests (and later WebSocket streams) when anything streamed changes. */
export interface Notifier {
  /** Called after the stream position advanced (persisted event, account data, receipt...) or typing changed. */
  notify(): void;
  /** Resolves when notify() is next called, after `timeoutMs`, or when `signal` aborts, whichever first. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void>;
}

export interface SendEventInput {
  roomId: string;
  sender: string;
  type: string;
  content: EventContent;
  /** Present for state events (may be ""). */
  stateKey?: string;
  /**
   * Idempotency: a repeat of (sender, deviceId, scope, txnId) returns the first event's ID. `scope` is the request
   * path without the txnId (spec: a transaction ID is scoped to a device and an endpoint path).
   */
  txn?: { deviceId: string; scope: string; txnId: string };
  /** For m.room.redaction. */
  redacts?: string;
  /** Override origin_server_ts (appservice/admin use only). */
  ts?: number;
}

/** Room logic: building, authorising, persisting events; membership; createRoom. (service/rooms.ts) */
export interface RoomService {
  /** Build, auth-check (M_FORBIDDEN with the reason), persist and announce one event. Serialised per room. */
  sendEvent(input: SendEventInput): Promise<{ eventId: string; stream: number }>;
  /** POST /createRoom semantics; returns the new room ID. `body` is the validated createRoom request. */
  createRoom(creator: string, body: JsonObject): Promise<{ roomId: string }>;
  /** Set a membership (join, leave, invite, ban, knock; kick = leave on another user). */
  setMembership(p: {
    roomId: string;
    sender: string;
    target: string;
    membership: "join" | "leave" | "invite" | "ban" | "knock";
    reason?: string;
    /** Extra content keys (displayname/avatar_url for joins come from the profile automatically). */
    extra?: EventContent;
  }): Promise<{ eventId: string }>;
  /** Delete every trace of a room (store.rooms.purgeRoom) under its lock, and forget its cached head. */
  purgeRoom(roomId: string): Promise<number>;
  /** Room version of a room (M_NOT_FOUND if unknown). */
  roomVersion(roomId: string): Promise<string>;
  /**
   * Merges the states of a forked room's extremities before a local send (federation sets state resolution v2;
   * until then no room can fork). See service/event-state.ts.
   */
  stateResolver: StateResolver;
  /**
   * Federation (federation/pdu-in.ts): run `fn` under the room's send lock with its head; `persist` writes an
   * accepted remote event as a timeline event, notifies, and makes the head be re-read.
   */
  withRemote<T>(
    roomId: string,
    fn: (head: RoomHead, persist: (event: Omit<NewEvent, "stream">) => Promise<number>) => Promise<T>,
  ): Promise<T>;
  /** Forget a room's cached head, under its lock: its DAG changed outside a local send (federation, tests). */
  reloadHead(roomId: string): Promise<void>;
}

/** Access tokens, sessions and passwords. (service/auth.ts) */
export interface AuthService {
  /**
   * Resolve an access token; null if unknown (or the user is deactivated). An expired one throws 401
   * M_UNKNOWN_TOKEN with soft_logout: true. Updates device last-seen lazily.
   */
  authenticate(accessToken: string, ip: string, userAgent?: string): Promise<Requester | null>;
  /**
   * Create a device (or reuse `deviceId`) and a new access token for it; with `refreshToken`, also a refresh
   * token, and the access token expires (`expiresInMs`).
   */
  createSession(
    userId: string,
    opts: { deviceId?: string; displayName?: string; ip?: string; refreshToken?: boolean },
  ): Promise<{ accessToken: string; deviceId: string; refreshToken?: string; expiresInMs?: number }>;
  hashPassword(password: string): Promise<string>;
  verifyPassword(password: string, hash: string): Promise<boolean>;
  /**
   * Call `fn` each time sessions stop being valid (logout, logout/all, device deletion, password change,
   * deactivation, a re-login to the same device), after their tokens are gone from the store, with a predicate
   * telling which requesters were revoked, and the revocation itself (`locked`: an account lock, tokens kept).
   * Revocations made on other workers arrive too (cluster/bus.ts). Returns the unsubscribe function.
   */
  onRevoke(fn: (revoked: (r: Requester) => boolean, rev: Revocation) => void): () => void;
}

/** In-memory typing notifications. (service/typing.ts) */
export interface TypingService {
  setTyping(roomId: string, userId: string, typing: boolean, timeoutMs: number): void;
  /** User IDs currently typing in the room. */
  typingIn(roomId: string): string[];
  /** Monotonic serial bumped on every change (part of sync tokens). */
  readonly serial: number;
  /** Rooms whose typing set changed after `serial`. */
  changedSince(serial: number): Set<string>;
}

/** Push notifications: rules evaluated for every written event, notifications recorded and pushed. (service/push.ts) */
export interface PushService {
  /** A local event was persisted: evaluate its recipients' push rules later; never throws, never waits. */
  onEvent(ev: { eventId: string; stream: number; pdu: JsonObject }): void;
  /** Drop what is queued for a pusher that was deleted. */
  forgetPusher(userId: string, appId: string, pushkey: string): void;
  /** Delete notifications past `matrix.push.notificationRetentionDays` (hourly by itself); returns how many. */
  trimNotifications(now?: number): Promise<number>;
  /** Stop retries and timers (shutdown). */
  close(): void;
}

export interface Homeserver {
  readonly config: MatrixConfig;
  readonly serverName: string;
  /** Base URL clients use (well-known, logs). */
  readonly publicBaseUrl: string;
  readonly store: Store;
  readonly log: Logger;
  readonly signingKey: SigningKey;
  /** Data dir of the matrix service (media store, signing key, shared secret). */
  readonly dataDir: string;
  /** Media files of versions before the content-addressed store (still served; new uploads go to `cas`). */
  readonly mediaDir: string;
  /** The runtime home's content-addressed store: media bytes, deduplicated (src/cas/). */
  readonly cas: CasStore;
  /** Thumbnails, URL previews and the downloads waiting for asynchronous uploads (service/media.ts). */
  readonly media: MediaService;
  /** Shared secret for /_synapse/admin/v1/register (from config or generated into dataDir). */
  readonly registrationSharedSecret: string;
  readonly stream: StreamWriter;
  /** The sibling worker processes (cluster/; a no-op with one process). */
  readonly cluster: Cluster;
  readonly notifier: Notifier;
  readonly rooms: RoomService;
  readonly auth: AuthService;
  readonly typing: TypingService;
  readonly push: PushService;
  readonly metrics: Metrics;
  /** Server-server API: access lists, discovery, the federation client, remote keys, X-Matrix checks. */
  readonly federation: Federation;
  /** Incoming PDUs: checks, persistence, counters (federation/pdu-in.ts). */
  readonly pduIn: PduIn;
  /** Partial-state rooms (joined with members omitted) and their background resync (federation/partial-state.ts). */
  readonly partialState: PartialStateResync;
  /**
   * Client-format events for `forUser` (ClientEvent: event_id, unsigned.age, unsigned.transaction_id for the
   * sender's own device, redacted content + unsigned.redacted_because for redacted events). Order is kept.
   */
  clientEvents(evs: StoredEvent[], forUser: Requester | null): Promise<ClientEvent[]>;
}
