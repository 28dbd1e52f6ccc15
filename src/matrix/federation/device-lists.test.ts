/**
 * The remote device-list cache (device-lists.ts) on a real homeserver (SQLite): bob of remote.test shares a room with
 * alice (his join written as federation writes a remote event), and remote.test's EDUs are applied as the
 * transaction layer applies them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { homeserverPerFile } from "../../../test/e2e/helpers/homeserver.ts";
import { applyDeviceListUpdate, applySigningKeyUpdate, type CachedKeys, queryFromCache } from "./device-lists.ts";

const ALICE = "@alice:localhost";
const BOB = "@bob:remote.test";

const server = homeserverPerFile("ami-device-lists-", { users: [ALICE] });

test("a device's keys or a cross-signing key too big to be real is not kept (the row stays bounded)", async () => {
  const { hs } = server.running;
  const { roomId } = await hs.rooms.createRoom(ALICE, { preset: "public_chat" });
  await hs.rooms.withRemote(roomId, (_head, persist) =>
    persist({
      eventId: `$${"j".repeat(43)}`,
      roomId,
      type: "m.room.member",
      stateKey: BOB,
      sender: BOB,
      originServerTs: Date.now(),
      depth: 10,
      pdu: { type: "m.room.member", state_key: BOB, sender: BOB, room_id: roomId, content: { membership: "join" } },
    }),
  );
  // bob's join drops any row of his (in the background): let that pass, then hold his list as a fetch would.
  await new Promise((r) => setTimeout(r, 200));
  await hs.store.deviceLists.putRemoteDeviceList({
    userId: BOB,
    streamId: 5,
    devices: {},
    masterKey: null,
    selfSigningKey: null,
    updatedTs: Date.now(),
  });
  const pad = "A".repeat(1_000_000);
  const keys = (deviceId: string, extra: string) => ({
    user_id: BOB,
    device_id: deviceId,
    algorithms: ["m.olm.v1.curve25519-aes-sha2"],
    keys: { [`ed25519:${deviceId}`]: "k", [`curve25519:${deviceId}`]: extra || "c" },
    signatures: {},
  });
  assert.equal(
    await applyDeviceListUpdate(hs, "remote.test", {
      user_id: BOB,
      device_id: "BIG",
      stream_id: 6,
      prev_id: [5],
      keys: keys("BIG", pad),
    }),
    true,
  );
  assert.equal(
    await applyDeviceListUpdate(hs, "remote.test", {
      user_id: BOB,
      device_id: "REAL",
      stream_id: 7,
      prev_id: [6],
      keys: keys("REAL", ""),
    }),
    true,
  );
  await applySigningKeyUpdate(hs, "remote.test", {
    user_id: BOB,
    master_key: { user_id: BOB, usage: ["master"], keys: { "ed25519:m": pad } },
  });
  const [row] = await hs.store.deviceLists.getRemoteDeviceLists([BOB]);
  assert.equal(row.streamId, 7, "both updates applied along the chain");
  assert.equal(row.devices.BIG?.keys, null, "the megabyte of keys is not kept");
  assert.equal((row.devices.REAL?.keys as any)?.device_id, "REAL", "a real device's keys are");
  assert.equal(row.masterKey, null, "nor a megabyte master key");
  assert.ok(JSON.stringify(row).length < 10_000);
});

test("a resync from a hung server does not hold up local keys/query of that user (fetched outside the lock)", async () => {
  const { hs } = server.running;
  const { roomId } = await hs.rooms.createRoom(ALICE, { preset: "public_chat" });
  const CARL = "@carl:remote.test";
  await hs.rooms.withRemote(roomId, (_head, persist) =>
    persist({
      eventId: `$${"k".repeat(43)}`,
      roomId,
      type: "m.room.member",
      stateKey: CARL,
      sender: CARL,
      originServerTs: Date.now(),
      depth: 10,
      pdu: { type: "m.room.member", state_key: CARL, sender: CARL, room_id: roomId, content: { membership: "join" } },
    }),
  );
  await new Promise((r) => setTimeout(r, 200)); // his join drops any row of his (in the background)
  await hs.store.deviceLists.putRemoteDeviceList({
    userId: CARL,
    streamId: 5,
    devices: { OLD: { keys: null, displayName: "old" } },
    masterKey: null,
    selfSigningKey: null,
    updatedTs: Date.now(),
  });
  // remote.test hangs on user/devices until released (as a server that accepts and never answers).
  let release: (v: unknown) => void = () => {};
  let asked = 0;
  const client = hs.federation.client as unknown as { request: (...a: unknown[]) => Promise<unknown> };
  const real = client.request;
  client.request = () => {
    asked++;
    return new Promise((r) => {
      release = r;
    });
  };
  try {
    // A gapped update (prev_id 9 was never received): a resync starts and hangs.
    assert.equal(
      await applyDeviceListUpdate(hs, "remote.test", { user_id: CARL, device_id: "NEW", stream_id: 10, prev_id: [9] }),
      true,
    );
    for (let i = 0; i < 100 && asked === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(asked, 1, "the resync asked remote.test");
    const out: CachedKeys = { device_keys: {}, master_keys: {}, self_signing_keys: {} };
    const answered = await Promise.race([
      queryFromCache(hs, { [CARL]: [] }, out, AbortSignal.timeout(30_000)).then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 3_000)),
    ]);
    assert.ok(answered, "keys/query answered from the cache while the resync hangs");
    // The server answers at last: the resync applies it.
    release({ user_id: CARL, stream_id: 12, devices: [{ device_id: "NEW", keys: null }] });
    for (let i = 0; i < 100; i++) {
      const [row] = await hs.store.deviceLists.getRemoteDeviceLists([CARL]);
      if (row?.streamId === 12) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const [row] = await hs.store.deviceLists.getRemoteDeviceLists([CARL]);
    assert.equal(row?.streamId, 12, "the resynced list is applied");
    assert.deepEqual(Object.keys(row?.devices ?? {}), ["NEW"]);
  } finally {
    client.request = real;
  }
});
