/** Fixtures shared by the store conformance suite. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AmiError, type ErrorCode } from "../../../core/errors.ts";
import type { NewEvent, RoomRow, Store, StoredEvent, UserRow } from "../types.ts";

/** What a backend's test file hands the suite: a fresh, initialised store on empty storage. */
export interface StoreHarness {
  store: Store;
  /** Open another Store on the same storage (init() already called); the first may stay open. */
  reopen(): Promise<Store>;
  /** The `database` config value for this storage, when another process can open it (openStore). */
  database?: string;
  /** Close whatever is still open and remove the storage. */
  cleanup(): Promise<void>;
}
export type MakeStore = () => Promise<StoreHarness>;

/** A test that gets a fresh store and always cleans it up. */
export function storeTest(makeStore: MakeStore, name: string, fn: (s: Store, h: StoreHarness) => Promise<void>) {
  // A bound, so a hang (the crash test's child, a stuck pool) fails the test instead of the whole run.
  test(name, { timeout: 120_000 }, async () => {
    const h = await makeStore();
    try {
      await fn(h.store, h);
    } finally {
      await h.cleanup();
    }
  });
}

export const user = (userId: string, over: Partial<UserRow> = {}): UserRow => ({
  userId,
  passwordHash: "scrypt$abc",
  createdTs: 1_700_000_000_000,
  admin: false,
  deactivated: false,
  isGuest: false,
  displayname: null,
  avatarUrl: null,
  locked: false,
  suspended: false,
  shadowBanned: false,
  ...over,
});

export const room = (roomId: string, over: Partial<RoomRow> = {}): RoomRow => ({
  roomId,
  version: "11",
  creator: "@alice:hs",
  createdTs: 1_700_000_000_000,
  isPublic: false,
  ...over,
});

/** A NewEvent whose PDU is consistent with its columns. */
export function event(
  stream: number,
  roomId: string,
  type: string,
  opts: { stateKey?: string; sender?: string; content?: Record<string, any>; eventId?: string; extra?: object } = {},
): NewEvent {
  const sender = opts.sender ?? "@alice:hs";
  const stateKey = opts.stateKey ?? null;
  const pdu: Record<string, any> = {
    room_id: roomId,
    type,
    sender,
    content: opts.content ?? {},
    origin_server_ts: 1_700_000_000_000 + stream,
    depth: stream,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: "x" },
    signatures: {},
    ...opts.extra,
  };
  if (stateKey !== null) pdu.state_key = stateKey;
  return {
    stream,
    eventId: opts.eventId ?? `$ev${stream}`,
    roomId,
    type,
    stateKey,
    sender,
    originServerTs: pdu.origin_server_ts,
    depth: stream,
    pdu,
  };
}

export const member = (stream: number, roomId: string, userId: string, membership: string, sender = userId) =>
  event(stream, roomId, "m.room.member", { stateKey: userId, sender, content: { membership } });

/** A receipt row at `stream` on event `$ev<stream>`. */
export const receipt = (stream: number, roomId: string, userId: string, type: string, threadId: string | null) => ({
  roomId,
  userId,
  type,
  eventId: `$ev${stream}`,
  threadId,
  ts: 1_700_000_000_000 + stream,
  stream,
});
export const streams = (events: StoredEvent[]): number[] => events.map((e) => e.stream);
export const ids = (events: StoredEvent[]): string[] => events.map((e) => e.eventId);

/** Assert that `p` rejects with an AmiError of `code`. */
export async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AmiError, `expected AmiError, got ${String(e)}`);
    assert.equal(e.code, code);
    return true;
  });
}

/** Create a room and persist `events` into it. */
export async function seedRoom(s: Store, roomId: string, events: NewEvent[]): Promise<void> {
  await s.rooms.createRoom(room(roomId));
  for (const e of events) await s.events.persistEvent(e);
}

/** Create the users and then the devices ([userId, deviceId] pairs). */
export async function withDevices(s: Store, devices: [string, string][]): Promise<void> {
  for (const u of new Set(devices.map(([u]) => u))) await s.accounts.createUser(user(u));
  for (const [userId, deviceId] of devices)
    await s.accounts.upsertDevice({
      userId,
      deviceId,
      displayName: null,
      createdTs: 1,
      lastSeenTs: null,
      lastSeenIp: null,
    });
}
