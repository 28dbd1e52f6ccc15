/**
 * Conformance: the DeviceListStore — remote users' device lists (one row per user, replaced whole, read by a list of
 * users, deleted), and our users' last outgoing update position.
 */
import assert from "node:assert/strict";
import type { RemoteDeviceListRow } from "../device-lists-types.ts";
import { type MakeStore, storeTest } from "./helpers.ts";

export function deviceListTests(make: MakeStore): void {
  storeTest(make, "device lists: put, replace, read several, delete; unknown users absent", async (s) => {
    assert.deepEqual(await s.deviceLists.getRemoteDeviceLists(["@a:b.test"]), []);
    assert.deepEqual(await s.deviceLists.getRemoteDeviceLists([]), []);
    const a: RemoteDeviceListRow = {
      userId: "@a:b.test",
      streamId: 2 ** 40,
      devices: {
        D1: {
          keys: { user_id: "@a:b.test", device_id: "D1", keys: { "ed25519:D1": "k\u00e9y" }, signatures: {} },
          displayName: "phone ☎",
        },
        D2: { keys: null, displayName: null },
      },
      masterKey: { user_id: "@a:b.test", usage: ["master"], keys: { "ed25519:m": "m" } },
      selfSigningKey: null,
      updatedTs: 1_700_000_000_000,
    };
    const c: RemoteDeviceListRow = {
      userId: "@c:b.test",
      streamId: 0,
      devices: {},
      masterKey: null,
      selfSigningKey: null,
      updatedTs: 5,
    };
    await s.deviceLists.putRemoteDeviceList(c);
    await s.deviceLists.putRemoteDeviceList(a);
    assert.deepEqual(await s.deviceLists.getRemoteDeviceLists(["@c:b.test", "@x:b.test", "@a:b.test"]), [a, c]);
    // A put replaces the whole row: a deleted device and a dropped key are gone.
    const a2 = { ...a, streamId: a.streamId + 1, devices: { D2: { keys: null, displayName: "n" } }, masterKey: null };
    await s.deviceLists.putRemoteDeviceList(a2);
    assert.deepEqual(await s.deviceLists.getRemoteDeviceLists(["@a:b.test"]), [a2]);
    await s.deviceLists.deleteRemoteDeviceLists(["@a:b.test", "@x:b.test"]);
    assert.deepEqual(await s.deviceLists.getRemoteDeviceLists(["@a:b.test", "@c:b.test"]), [c]);
    await s.deviceLists.deleteRemoteDeviceLists([]);
  });

  storeTest(make, "device lists: the last outgoing update position per user, only ever raised", async (s) => {
    assert.deepEqual(await s.deviceLists.getDeviceListStreams(["@a:hs.test"]), new Map());
    await s.deviceLists.setDeviceListStream("@a:hs.test", 3);
    await s.deviceLists.setDeviceListStream("@b:hs.test", 3);
    await s.deviceLists.setDeviceListStream("@a:hs.test", 9);
    await s.deviceLists.setDeviceListStream("@a:hs.test", 4);
    // Other device-list changes (cross-signing, signatures) do not move it.
    await s.keys.markDeviceListsChanged(["@a:hs.test", "@b:hs.test"], 20);
    assert.deepEqual(
      await s.deviceLists.getDeviceListStreams(["@a:hs.test", "@b:hs.test", "@c:hs.test"]),
      new Map([
        ["@a:hs.test", 9],
        ["@b:hs.test", 3],
      ]),
    );
  });
}
