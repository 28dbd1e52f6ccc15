/**
 * Federation queries between real homeservers on loopback (hs1.test, hs2.test in-process, found through
 * `federation.hostMap`): E2EE keys across servers (a matrix-js-sdk client on hs2 downloads the keys of a hs1 user's
 * device and claims one of its one-time keys; matrix-js-sdk clients on both exchange encrypted messages and follow
 * each other's new devices through m.device_list_update, kept in a remote device-list cache that resyncs on gaps,
 * survives an outage and answers with the origin down; cross-signing signatures across servers), remote profiles and
 * aliases, the published room directory, OpenID
 * userinfo, and media uploaded on hs1 shown to a client on hs2 (then from hs2's cache with hs1 stopped). Served
 * answers are checked against the spec's server-server OpenAPI; forged and bad requests get clear errors.
 */
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, randomBytes, sign } from "node:crypto";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { EventType, type MatrixClient } from "matrix-js-sdk";
import sharp from "sharp";
import { unpaddedBase64 } from "../../src/matrix/events/base64.ts";
import { canonicalJsonBytes } from "../../src/matrix/events/canonical-json.ts";
import { verifyJsonSignature } from "../../src/matrix/events/signing.ts";
import { deviceListCounters } from "../../src/matrix/federation/device-lists.ts";
import { parseMultipart } from "../../src/matrix/federation/remote-media.ts";
import { signRequest } from "../../src/matrix/federation/x-matrix.ts";
import { assertSpec, eduSchemaErrors } from "../../src/test/spec-schema.ts";
import {
  api,
  enc,
  loginUser,
  ok,
  registerUser,
  type Session,
  sdkClient,
  startSynced,
  waitFor,
} from "./helpers/client.ts";
import { type Federated, type FedServer as Hs, startFederated } from "./helpers/federation.ts";
import { startInProcess } from "./helpers/homeserver.ts";

const REMOTE_MEDIA_LIMIT = 256 * 1024;

const PKCS8 = Buffer.from("302e020100300506032b657004220420", "hex");

/** An Ed25519 key that signs JSON the Matrix way (canonical JSON without signatures/unsigned). */
function edKey() {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8, randomBytes(32)]), format: "der", type: "pkcs8" });
  const der = createPublicKey(priv).export({ format: "der", type: "spki" });
  const pub = unpaddedBase64(der.subarray(der.length - 32));
  return {
    pub,
    sign<T extends Record<string, any>>(obj: T, userId: string, keyId: string): T {
      const { signatures, unsigned: _u, ...rest } = obj;
      const sig = unpaddedBase64(sign(null, canonicalJsonBytes(rest), priv));
      return { ...obj, signatures: { ...signatures, [userId]: { ...signatures?.[userId], [keyId]: sig } } };
    },
  };
}

describe("federation queries: keys, profiles, aliases, directory, OpenID, media between two homeservers", () => {
  let fed: Federated;
  let hs1: Hs;
  let hs2: Hs;
  let alice: Session; // on hs1
  let bob: Session; // on hs2
  const clients: MatrixClient[] = [];
  let e2eeRoom = ""; // alice's encrypted room that bob joins

  /** A server that accepts connections and never answers. */
  const silent = createServer(() => {});
  const held = new Set<Socket>();
  silent.on("connection", (s) => held.add(s));

  before(async () => {
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const slowUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    // hs2 takes remote files of at most REMOTE_MEDIA_LIMIT bytes; hs1 takes uploads up to its default.
    fed = await startFederated(2, [{}, { media: { maxUploadBytes: REMOTE_MEDIA_LIMIT } }], { "slow.test": slowUrl });
    [hs1, hs2] = fed.servers;
    alice = await registerUser(hs1.url, "alice");
    bob = await registerUser(hs2.url, "bob");
  });

  after(async () => {
    for (const c of clients) c.stopClient();
    await fed?.dispose();
    for (const s of held) s.destroy();
    silent.close();
  });

  /** A request signed by hs1 to hs2's federation API (as hs1's federation client sends it). */
  const fromHs1 = <T = any>(method: "GET" | "POST", path: string, body?: unknown) =>
    hs1.hs.federation.client.request<T>("hs2.test", { method, path, body });

  test("keys across servers: a matrix-js-sdk client on hs2 downloads alice's (hs1) device keys and claims a one-time key", async () => {
    const a = sdkClient(hs1.url, alice);
    const b = sdkClient(hs2.url, bob);
    clients.push(a, b);
    for (const c of [a, b]) {
      await c.initRustCrypto({ useIndexedDB: false });
      await startSynced(c);
    }
    // alice's device uploads its keys and one-time keys after the first sync.
    await waitFor(
      "alice's one-time keys on hs1",
      async () => (await hs1.hs.store.keys.countOneTimeKeys(alice.userId, alice.deviceId)).signed_curve25519 > 0,
    );
    // The SDK's own key download goes to hs2's /keys/query, which asks hs1 over federation.
    const info = await b.getCrypto()!.getUserDeviceInfo([alice.userId], true);
    const dev = info.get(alice.userId)?.get(alice.deviceId);
    assert.ok(dev, "alice's device came over federation");
    const mine = (await hs1.hs.store.keys.getDeviceKeys([alice.userId]))[0].keys;
    assert.equal(dev.getIdentityKey(), mine.keys[`curve25519:${alice.deviceId}`]);
    assert.equal(dev.getFingerprint(), mine.keys[`ed25519:${alice.deviceId}`]);

    // The same answer through the raw client API: no failures, cross-signing keys included when set.
    const q = await ok(hs2.url, "POST", "/_matrix/client/v3/keys/query", {
      token: bob.accessToken,
      body: { device_keys: { [alice.userId]: [], "@nobody:dead.test": [] }, timeout: 3000 },
    });
    assert.deepEqual(Object.keys(q.device_keys[alice.userId]), [alice.deviceId]);
    assert.deepEqual(Object.keys(q.failures), ["dead.test"], "the unreachable server is listed by name");

    // A server that never answers costs the request's `timeout`, not more; the others' keys still come.
    const slow = await ok(hs2.url, "POST", "/_matrix/client/v3/keys/query", {
      token: bob.accessToken,
      body: { device_keys: { [alice.userId]: [], "@x:slow.test": [], [bob.userId]: [] }, timeout: 300 },
    });
    assert.deepEqual(Object.keys(slow.failures), ["slow.test"]);
    assert.equal(slow.failures["slow.test"].status, 504);
    assert.deepEqual(Object.keys(slow.device_keys).sort(), [alice.userId, bob.userId].sort());
    const claimSlow = await ok(hs2.url, "POST", "/_matrix/client/v3/keys/claim", {
      token: bob.accessToken,
      body: { one_time_keys: { "@x:slow.test": { D: "signed_curve25519" } }, timeout: 300 },
    });
    assert.deepEqual([Object.keys(claimSlow.failures), claimSlow.one_time_keys], [["slow.test"], {}]);

    const before = (await hs1.hs.store.keys.countOneTimeKeys(alice.userId, alice.deviceId)).signed_curve25519;
    const claim = await ok(hs2.url, "POST", "/_matrix/client/v3/keys/claim", {
      token: bob.accessToken,
      body: { one_time_keys: { [alice.userId]: { [alice.deviceId]: "signed_curve25519" } } },
    });
    assert.deepEqual(claim.failures, {});
    const [[keyId, key]] = Object.entries(claim.one_time_keys[alice.userId][alice.deviceId]) as [string, any][];
    assert.match(keyId, /^signed_curve25519:/);
    const ed = mine.keys[`ed25519:${alice.deviceId}`];
    assert.ok(verifyJsonSignature(key, alice.userId, `ed25519:${alice.deviceId}`, ed), "signed by alice's device");
    assert.equal(
      (await hs1.hs.store.keys.countOneTimeKeys(alice.userId, alice.deviceId)).signed_curve25519,
      before - 1,
      "claimed on hs1: that key is gone",
    );
  });

  test("E2EE across servers: encrypted messages both ways; alice's new hs1 device reaches bob through m.device_list_update and decrypts what follows", async () => {
    const [a, b] = clients;
    // What hs1 sends of alice's devices, recorded on the way into its real sender (checked at the end).
    const sent: { edu_type: string; content: Record<string, any> }[] = [];
    const sender = hs1.hs.federation.sender;
    const sendEdu = sender.sendEdu.bind(sender);
    sender.sendEdu = (to, edu, key) => {
      if (edu.edu_type.endsWith("_update")) sent.push(edu as (typeof sent)[0]);
      sendEdu(to, edu, key);
    };
    after(() => {
      sender.sendEdu = sendEdu;
    });
    const bodies = (c: MatrixClient, roomId: string) =>
      (c.getRoom(roomId)?.getLiveTimeline().getEvents() ?? [])
        .filter((e) => e.getType() === EventType.RoomMessage && e.isEncrypted() && !e.isDecryptionFailure())
        .map((e) => e.getContent().body as string);
    const roomId = (
      await a.createRoom({
        invite: [bob.userId],
        initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
      })
    ).room_id;
    e2eeRoom = roomId;
    await waitFor("bob (hs2) sees the invite", () => b.getRoom(roomId)?.getMyMembership() === "invite");
    await b.joinRoom(roomId, { viaServers: ["hs1.test"] });
    await waitFor("alice sees bob joined", () => a.getRoom(roomId)?.getMember(bob.userId)?.membership === "join");
    await waitFor("bob's room is encrypted", () => b.getRoom(roomId)?.hasEncryptionStateEvent());

    // Megolm keys go out as Olm to-device messages over federation; each side decrypts the other's message.
    await a.sendTextMessage(roomId, "from hs1");
    await waitFor("bob decrypts alice's message", () => bodies(b, roomId).includes("from hs1"), 30_000);
    await b.sendTextMessage(roomId, "from hs2");
    await waitFor("alice decrypts bob's message", () => bodies(a, roomId).includes("from hs2"), 30_000);

    // Sharing a room, hs2 tracks alice's device list: it holds her devices, fetched once with user/devices.
    const cached = () => hs2.hs.store.deviceLists.getRemoteDeviceLists([alice.userId]);
    const [row] = await waitFor("hs2 caches alice's device list", cached);
    assert.deepEqual(Object.keys(row.devices), [alice.deviceId]);
    const counters = deviceListCounters(hs2.hs);

    // Alice sets up cross-signing: her master and self-signing keys reach hs2 as m.signing_key_update, and her
    // device's new self-signing signature as an m.device_list_update.
    await a.getCrypto()!.bootstrapCrossSigning({ authUploadDeviceSigningKeys: (makeRequest) => makeRequest(null) });
    const hers = await hs1.hs.store.keys.getCrossSigningKeys([alice.userId]);
    const master = hers.find((k) => k.type === "master")?.key;
    assert.ok(master);
    await waitFor("hs2 holds alice's master key", async () => (await cached())[0]?.masterKey);
    assert.deepEqual((await cached())[0].masterKey, master);
    assert.ok((await cached())[0].selfSigningKey, "and her self-signing key");
    await waitFor(
      "hs2 holds alice's device signed by her self-signing key",
      async () =>
        Object.keys(((await cached())[0].devices[alice.deviceId].keys?.signatures as any)?.[alice.userId] ?? {})
          .length === 2,
    );
    const appliedBefore = counters.applied;

    // Alice logs in on a second hs1 device: its keys go to hs2 as an m.device_list_update chained on the first.
    const alice2 = await loginUser(hs1.url, "alice");
    const a2 = sdkClient(hs1.url, alice2);
    clients.push(a2);
    await a2.initRustCrypto({ useIndexedDB: false });
    await startSynced(a2);
    await waitFor(
      "hs2's cache has alice's new device with its keys (from the EDU)",
      async () => (await cached())[0]?.devices[alice2.deviceId]?.keys,
    );
    assert.ok(counters.applied > appliedBefore, "applied along the prev_id chain, no resync");
    const mine = (await hs1.hs.store.keys.getDeviceKeys([alice.userId])).find((d) => d.deviceId === alice2.deviceId);
    assert.deepEqual((await cached())[0].devices[alice2.deviceId].keys, mine?.keys);
    // Bob's client hears of it through /sync device_lists.changed and downloads it (hs2 answers from its cache).
    const fromCache = counters.fromCache;
    await waitFor(
      "bob's client knows alice's new device",
      async () => (await b.getCrypto()!.getUserDeviceInfo([alice.userId])).get(alice.userId)?.has(alice2.deviceId),
      30_000,
    );
    assert.ok(counters.fromCache > fromCache, "hs2 answered bob's keys/query from the cache");

    await b.sendTextMessage(roomId, "after the new device");
    await waitFor(
      "alice's new device decrypts bob's next message",
      () => bodies(a2, roomId).includes("after the new device"),
      30_000,
    );
    await waitFor("alice's first device too", () => bodies(a, roomId).includes("after the new device"), 30_000);

    // The new device logs out: hs2 hears of the deletion the same way.
    await ok(hs1.url, "POST", "/_matrix/client/v3/logout", { token: alice2.accessToken, body: {} });
    a2.stopClient();
    await waitFor("hs2 drops the deleted device", async () => !(await cached())[0]?.devices[alice2.deviceId]);
    assert.equal(counters.resyncs, 0, "no update was lost: nothing resynced");

    // As the spec has them: each update's stream_id is new and increasing for the user, and its prev_id names the
    // one before (none for the first); cross-signing went as m.signing_key_update.
    const updates = sent.filter((e) => e.edu_type === "m.device_list_update" && e.content.user_id === alice.userId);
    assert.ok(updates.length >= 3, `signed device, new device's keys, its deletion (${updates.length})`);
    assert.ok(sent.some((e) => e.edu_type === "m.signing_key_update" && e.content.master_key));
    for (const e of sent) assert.deepEqual(eduSchemaErrors(e.edu_type, e), [], JSON.stringify(e).slice(0, 300));
    for (const [i, e] of updates.entries()) {
      if (i === 0) continue;
      assert.ok(e.content.stream_id > updates[i - 1].content.stream_id);
      assert.deepEqual(e.content.prev_id, [updates[i - 1].content.stream_id]);
    }
    assert.ok(updates.some((e) => e.content.deleted === true && e.content.device_id === alice2.deviceId));
  });

  test("device-list EDUs: a gap in prev_id resyncs from user/devices; others' users and bad updates are dropped", async () => {
    const counters = deviceListCounters(hs2.hs);
    const [row] = await hs2.hs.store.deviceLists.getRemoteDeviceLists([alice.userId]);
    assert.ok(row, "hs2 tracks alice (they share a room since the previous test)");
    let n = 0;
    const send = (edus: Record<string, unknown>[]) =>
      hs1.hs.federation.client.request<any>("hs2.test", {
        method: "PUT",
        path: `/_matrix/federation/v1/send/devlists${Date.now()}-${n++}`,
        body: { origin: "hs1.test", origin_server_ts: Date.now(), pdus: [], edus },
      });
    const dropped = hs2.hs.federation.inbound.edusDropped;
    const fake = { user_id: alice.userId, device_id: "FAKE", stream_id: row.streamId + 1000, prev_id: [row.streamId] };
    await send([
      { edu_type: "m.device_list_update", content: { ...fake, user_id: bob.userId } }, // hs2's user, from hs1
      { edu_type: "m.device_list_update", content: { ...fake, stream_id: "x" } },
      { edu_type: "m.device_list_update", content: { ...fake, user_id: "@nobody:hs1.test" } }, // shares no room
      { edu_type: "m.signing_key_update", content: { user_id: alice.userId, master_key: { user_id: bob.userId } } },
    ]);
    assert.equal(hs2.hs.federation.inbound.edusDropped, dropped + 4);
    // Chained on what hs2 holds: applied as sent (hs1 never had such a device; a resync would not show it). Keys
    // that name another user or device are not kept.
    await send([
      {
        edu_type: "m.device_list_update",
        content: { ...fake, keys: { user_id: bob.userId, device_id: "FAKE", keys: {} }, device_display_name: "f" },
      },
    ]);
    let [now] = await hs2.hs.store.deviceLists.getRemoteDeviceLists([alice.userId]);
    assert.deepEqual(now.devices.FAKE, { keys: null, displayName: "f" });
    assert.equal(now.streamId, fake.stream_id);
    // A prev_id hs2 never saw: an update was lost, so the whole list is fetched again and FAKE is gone.
    const resyncs = counters.resyncs;
    await send([
      {
        edu_type: "m.device_list_update",
        content: { ...fake, device_id: "FAKE2", stream_id: fake.stream_id + 10, prev_id: [fake.stream_id + 5] },
      },
    ]);
    [now] = await waitFor("hs2 resynced alice's list", async () => {
      const r = await hs2.hs.store.deviceLists.getRemoteDeviceLists([alice.userId]);
      return counters.resyncs > resyncs && r[0] && !r[0].devices.FAKE ? r : null;
    });
    assert.equal(counters.resyncs, resyncs + 1);
    assert.deepEqual(Object.keys(now.devices), [alice.deviceId]);
    assert.equal(counters.resyncFailures, 0);

    // Bob leaves the only room he shares with alice: neither server keeps the other's list (no updates would come
    // any more), and alice's keys/changes lists bob as left.
    const since = (await ok(hs1.url, "GET", "/_matrix/client/v3/sync?timeout=0", { token: alice.accessToken }))
      .next_batch;
    assert.equal((await hs1.hs.store.deviceLists.getRemoteDeviceLists([bob.userId])).length, 1, "hs1 tracks bob");
    await ok(hs2.url, "POST", `/_matrix/client/v3/rooms/${enc(e2eeRoom)}/leave`, { token: bob.accessToken, body: {} });
    await waitFor(
      "hs1 sees bob leave",
      async () => (await hs1.hs.store.events.getMembership(e2eeRoom, bob.userId))?.membership === "leave",
    );
    for (const [s, u] of [
      [hs1, bob.userId],
      [hs2, alice.userId],
    ] as const)
      await waitFor(
        `${s.name} no longer holds ${u}'s list`,
        async () => (await s.hs.store.deviceLists.getRemoteDeviceLists([u])).length === 0,
      );
    const upto = (
      await ok(hs1.url, "GET", `/_matrix/client/v3/sync?timeout=0&since=${enc(since)}`, { token: alice.accessToken })
    ).next_batch;
    const changes = await ok(hs1.url, "GET", `/_matrix/client/v3/keys/changes?from=${enc(since)}&to=${enc(upto)}`, {
      token: alice.accessToken,
    });
    assert.deepEqual(changes.left, [bob.userId]);
  });

  test("cross-signing across servers: carol (hs1) signs dave's (hs2) master key with her user-signing key; only she sees it", async () => {
    const carol = await registerUser(hs1.url, "carol");
    const dave = await registerUser(hs2.url, "dave");
    const erin = await registerUser(hs1.url, "erin");
    const K = "/_matrix/client/v3/keys";
    const csKey = (userId: string, k: ReturnType<typeof edKey>, usage: string) => ({
      user_id: userId,
      usage: [usage],
      keys: { [`ed25519:${k.pub}`]: k.pub },
    });
    const upload = (s: Session, body: unknown) =>
      ok(s === dave ? hs2.url : hs1.url, "POST", `${K}/device_signing/upload`, { token: s.accessToken, body });
    const [dm, cm, cu] = [edKey(), edKey(), edKey()];
    await upload(dave, { master_key: csKey(dave.userId, dm, "master") });
    await upload(carol, {
      master_key: csKey(carol.userId, cm, "master"),
      user_signing_key: cm.sign(csKey(carol.userId, cu, "user_signing"), carol.userId, `ed25519:${cm.pub}`),
    });
    const roomId = (
      await ok(hs1.url, "POST", "/_matrix/client/v3/createRoom", {
        token: carol.accessToken,
        body: { invite: [dave.userId, erin.userId] },
      })
    ).room_id;
    for (const [s, url] of [
      [dave, `${hs2.url}`],
      [erin, `${hs1.url}`],
    ] as const)
      await ok(url, "POST", `/_matrix/client/v3/join/${enc(roomId)}?server_name=hs1.test`, {
        token: s.accessToken,
        body: {},
      });
    const query = (s: Session) =>
      ok(hs1.url, "POST", `${K}/query`, { token: s.accessToken, body: { device_keys: { [dave.userId]: [] } } });
    const master = (await query(carol)).master_keys[dave.userId];
    assert.equal(master.keys[`ed25519:${dm.pub}`], dm.pub, "hs1 holds dave's master key");
    const signed = cu.sign(master, carol.userId, `ed25519:${cu.pub}`);
    const su = await ok(hs1.url, "POST", `${K}/signatures/upload`, {
      token: carol.accessToken,
      body: { [dave.userId]: { [dm.pub]: signed } },
    });
    assert.deepEqual(su.failures, {});
    const seen = (await query(carol)).master_keys[dave.userId];
    assert.equal(
      seen.signatures[carol.userId][`ed25519:${cu.pub}`],
      signed.signatures[carol.userId][`ed25519:${cu.pub}`],
    );
    assert.equal((await query(erin)).master_keys[dave.userId].signatures?.[carol.userId], undefined, "not erin");
    // A signature that does not verify is refused.
    const forged = { ...signed, signatures: { [carol.userId]: { [`ed25519:${cu.pub}`]: "AAAA" } } };
    const bad = await ok(hs1.url, "POST", `${K}/signatures/upload`, {
      token: carol.accessToken,
      body: { [dave.userId]: { [dm.pub]: forged } },
    });
    assert.ok(bad.failures[dave.userId]?.[dm.pub]);
  });

  test("device lists through an outage: hs2 down while carol renames her device three times gets one update, resyncs, holds the last name", async () => {
    const carol = await loginUser(hs1.url, "carol");
    const dave = await loginUser(hs2.url, "dave");
    const cached = () => hs2.hs.store.deviceLists.getRemoteDeviceLists([carol.userId]);
    const k = edKey();
    const id = carol.deviceId;
    const deviceKeys = k.sign(
      {
        user_id: carol.userId,
        device_id: id,
        algorithms: ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        keys: { [`curve25519:${id}`]: unpaddedBase64(randomBytes(32)), [`ed25519:${id}`]: k.pub },
      },
      carol.userId,
      `ed25519:${id}`,
    );
    await ok(hs1.url, "POST", "/_matrix/client/v3/keys/upload", {
      token: carol.accessToken,
      body: { device_keys: deviceKeys },
    });
    // dave's server fetches carol's list (they share the room of the previous test).
    await ok(hs2.url, "POST", "/_matrix/client/v3/keys/query", {
      token: dave.accessToken,
      body: { device_keys: { [carol.userId]: [] } },
    });
    assert.ok((await cached())[0]?.devices[carol.deviceId], "hs2 tracks carol's new device");
    await hs2.stop();
    try {
      const status = async () => (await hs1.hs.federation.sender.status()).find((d) => d.destination === "hs2.test");
      for (const name of ["one", "two", "three"])
        await ok(hs1.url, "PUT", `/_matrix/client/v3/devices/${enc(carol.deviceId)}`, {
          token: carol.accessToken,
          body: { display_name: name },
        });
      await waitFor("hs1 has given up on hs2 for now", async () => ((await status())?.failures ?? 0) > 0);
      // The failed transaction (the first rename) is kept as it was; the two later renames coalesced into one.
      assert.equal((await status())?.queuedEdus, 2);
    } finally {
      await hs2.start();
    }
    await hs1.hs.federation.sender.wake("hs2.test");
    await waitFor(
      "hs2 holds carol's last name",
      async () => (await cached())[0]?.devices[carol.deviceId]?.displayName === "three",
    );
    assert.equal(deviceListCounters(hs2.hs).resyncs, 1, "the gap left by the coalesced updates resynced once");
  });

  test("served answers match the spec: user/devices, user/keys/query, user/keys/claim", async () => {
    // A second device of bob (hs2; the first is the SDK's) uploads device keys and a fallback key, no one-time key.
    const bob2 = await loginUser(hs2.url, "bob");
    const dk = {
      user_id: bob.userId,
      device_id: bob2.deviceId,
      algorithms: ["m.olm.v1.curve25519-aes-sha2"],
      keys: { [`curve25519:${bob2.deviceId}`]: "c".repeat(43), [`ed25519:${bob2.deviceId}`]: "e".repeat(43) },
    };
    // Signature checks need a real key: let hs2's keys/upload check be satisfied by a key pair of our own.
    const { generateSigningKey, signJson } = await import("../../src/matrix/events/signing.ts");
    const k = generateSigningKey();
    const devKeys = signJson(
      { ...dk, keys: { ...dk.keys, [`ed25519:${bob2.deviceId}`]: k.publicKeyBase64 } },
      bob.userId,
      { ...k, keyId: `ed25519:${bob2.deviceId}` },
    );
    const fallback = signJson({ key: "f".repeat(43), fallback: true }, bob.userId, {
      ...k,
      keyId: `ed25519:${bob2.deviceId}`,
    });
    await ok(hs2.url, "POST", "/_matrix/client/v3/keys/upload", {
      token: bob2.accessToken,
      body: { device_keys: devKeys, fallback_keys: { "signed_curve25519:FB": fallback } },
    });
    const devices = await fromHs1("GET", `/_matrix/federation/v1/user/devices/${enc(bob.userId)}`);
    assertSpec("server-server/user_devices.yaml", "/user/devices/{userId}", "GET", 200, devices);
    assert.equal(devices.user_id, bob.userId);
    assert.ok(Number.isInteger(devices.stream_id) && devices.stream_id > 0);
    assert.deepEqual(
      devices.devices.map((d: any) => d.device_id).sort(),
      [bob.deviceId, bob2.deviceId].sort(),
      "both devices with keys",
    );
    const mine = devices.devices.find((d: any) => d.device_id === bob2.deviceId);
    assert.equal(mine.keys.keys[`ed25519:${bob2.deviceId}`], k.publicKeyBase64);
    assert.equal(
      devices.devices.find((d: any) => d.device_id === bob.deviceId).device_display_name,
      "bob's e2e device",
    );
    const q = await fromHs1("POST", "/_matrix/federation/v1/user/keys/query", {
      device_keys: { [bob.userId]: [] },
    });
    assertSpec("server-server/user_keys.yaml", "/user/keys/query", "POST", 200, q);
    assert.deepEqual(Object.keys(q.device_keys[bob.userId]).sort(), [bob.deviceId, bob2.deviceId].sort());
    // No one-time key left: the fallback key, as often as asked.
    for (let i = 0; i < 2; i++) {
      const c = await fromHs1("POST", "/_matrix/federation/v1/user/keys/claim", {
        one_time_keys: { [bob.userId]: { [bob2.deviceId]: "signed_curve25519" } },
      });
      assertSpec("server-server/user_keys.yaml", "/user/keys/claim", "POST", 200, c);
      assert.deepEqual(c.one_time_keys, {
        [bob.userId]: { [bob2.deviceId]: { "signed_curve25519:FB": fallback } },
      });
    }
  });

  test("remote profile and remote alias resolution through the client API", async () => {
    await ok(hs1.url, "PUT", `/_matrix/client/v3/profile/${enc(alice.userId)}/displayname`, {
      token: alice.accessToken,
      body: { displayname: "Alice of hs1" },
    });
    const p = await ok(hs2.url, "GET", `/_matrix/client/v3/profile/${enc(alice.userId)}`, { token: bob.accessToken });
    assert.deepEqual(p, { displayname: "Alice of hs1" });
    const field = await ok(hs2.url, "GET", `/_matrix/client/v3/profile/${enc(alice.userId)}/displayname`, {
      token: bob.accessToken,
    });
    assert.deepEqual(field, { displayname: "Alice of hs1" });
    const missing = await api(hs2.url, "GET", `/_matrix/client/v3/profile/${enc("@nobody:hs1.test")}`, {
      token: bob.accessToken,
    });
    assert.deepEqual([missing.status, missing.json.errcode], [404, "M_NOT_FOUND"]);
    // bob cannot edit a remote user's profile.
    const put = await api(hs2.url, "PUT", `/_matrix/client/v3/profile/${enc(alice.userId)}/displayname`, {
      token: bob.accessToken,
      body: { displayname: "x" },
    });
    assert.equal(put.status, 403);

    const room = await ok(hs1.url, "POST", "/_matrix/client/v3/createRoom", {
      token: alice.accessToken,
      body: { room_alias_name: "lobby", visibility: "public", name: "Lobby" },
    });
    const dir = await fromHs1("GET", `/_matrix/federation/v1/query/directory?room_alias=${enc("#x:hs2.test")}`).catch(
      (e) => e,
    );
    assert.equal(dir.code, "M_NOT_FOUND");
    const served = await hs2.hs.federation.client.request<any>("hs1.test", {
      method: "GET",
      path: `/_matrix/federation/v1/query/directory?room_alias=${enc("#lobby:hs1.test")}`,
    });
    assertSpec("server-server/query.yaml", "/query/directory", "GET", 200, served);
    assert.deepEqual(served, { room_id: room.room_id, servers: ["hs1.test"] });
    const resolved = await ok(hs2.url, "GET", `/_matrix/client/v3/directory/room/${enc("#lobby:hs1.test")}`, {
      token: bob.accessToken,
    });
    assert.deepEqual(resolved, { room_id: room.room_id, servers: ["hs1.test"] });
    const none = await api(hs2.url, "GET", `/_matrix/client/v3/directory/room/${enc("#none:hs1.test")}`, {
      token: bob.accessToken,
    });
    assert.deepEqual([none.status, none.json.errcode], [404, "M_NOT_FOUND"]);

    // The published directory of hs1, GET and POST with a filter.
    const list = await hs2.hs.federation.client.request<any>("hs1.test", {
      method: "GET",
      path: "/_matrix/federation/v1/publicRooms?limit=10",
    });
    assertSpec("server-server/public_rooms.yaml", "/publicRooms", "GET", 200, list);
    assert.deepEqual(
      list.chunk.map((r: any) => [r.room_id, r.name]),
      [[room.room_id, "Lobby"]],
    );
    for (const [term, n] of [
      ["lob", 1],
      ["zzz", 0],
    ] as const) {
      const f = await hs2.hs.federation.client.request<any>("hs1.test", {
        method: "POST",
        path: "/_matrix/federation/v1/publicRooms",
        body: { limit: 10, filter: { generic_search_term: term } },
      });
      assertSpec("server-server/public_rooms.yaml", "/publicRooms", "POST", 200, f);
      assert.equal(f.chunk.length, n, term);
    }
    // A client of hs2 browses hs1's directory (`server=hs1.test`).
    const viaClient = await ok(hs2.url, "GET", "/_matrix/client/v3/publicRooms?server=hs1.test&limit=5", {
      token: bob.accessToken,
    });
    assert.deepEqual(
      viaClient.chunk.map((r: any) => r.room_id),
      [room.room_id],
    );
    const searched = await ok(hs2.url, "POST", "/_matrix/client/v3/publicRooms?server=hs1.test", {
      token: bob.accessToken,
      body: { filter: { generic_search_term: "zzz" } },
    });
    assert.deepEqual(searched.chunk, []);
    const own = await ok(hs2.url, "GET", "/_matrix/client/v3/publicRooms", { token: bob.accessToken });
    assert.deepEqual(own.chunk, [], "hs2's own directory is empty");
  });

  test("OpenID: a token alice gets from hs1 is answered by hs1's userinfo, a made-up one is not", async () => {
    const t = await ok(hs1.url, "POST", `/_matrix/client/v3/user/${enc(alice.userId)}/openid/request_token`, {
      token: alice.accessToken,
      body: {},
    });
    assert.equal(t.matrix_server_name, "hs1.test");
    const info = await ok(hs1.url, "GET", `/_matrix/federation/v1/openid/userinfo?access_token=${enc(t.access_token)}`);
    assertSpec("server-server/openid.yaml", "/openid/userinfo", "GET", 200, info);
    assert.deepEqual(info, { sub: alice.userId });
    const bad = await api(hs1.url, "GET", "/_matrix/federation/v1/openid/userinfo?access_token=nope");
    assert.deepEqual([bad.status, bad.json.errcode], [401, "M_UNKNOWN_TOKEN"]);
  });

  test("forged and bad requests: clear errors, the servers stay up", async () => {
    const uri = "/_matrix/federation/v1/user/keys/query";
    // Unsigned.
    for (const path of [
      uri,
      `/_matrix/federation/v1/user/devices/${enc(bob.userId)}`,
      "/_matrix/federation/v1/media/download/abc",
    ]) {
      const r = await api(
        hs2.url,
        path === uri ? "POST" : "GET",
        path,
        path === uri ? { body: { device_keys: {} } } : {},
      );
      assert.deepEqual([r.status, r.json.errcode], [401, "M_UNAUTHORIZED"], path);
    }
    // Signed by hs1, but naming a user of another server.
    for (const [method, path, body] of [
      ["POST", uri, { device_keys: { [alice.userId]: [] } }],
      [
        "POST",
        "/_matrix/federation/v1/user/keys/claim",
        { one_time_keys: { [alice.userId]: { X: "signed_curve25519" } } },
      ],
      ["GET", `/_matrix/federation/v1/user/devices/${enc(alice.userId)}`, undefined],
    ] as const)
      await assert.rejects(fromHs1(method, path, body), (e: any) => e.code === "M_FORBIDDEN" && e.status === 403);
    // Malformed JSON, correctly signed (the signature covers the content it claims).
    const raw = "{not json";
    const auth = signRequest(
      { method: "POST", uri, origin: "hs1.test", destination: "hs2.test", content: undefined },
      hs1.hs.signingKey,
    );
    const bad = await api(hs2.url, "POST", uri, { body: raw, headers: { Authorization: auth } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errcode, "M_NOT_JSON");
    // A body of the wrong shape.
    await assert.rejects(
      fromHs1("POST", uri, { device_keys: [] }),
      (e: any) => e.status === 400 && e.code === "M_BAD_JSON",
    );
    // Media IDs that try to leave the media store.
    for (const id of ["..%2F..%2Fetc%2Fpasswd", "..", "a%00b"]) {
      const r = await api(hs2.url, "GET", `/_matrix/client/v1/media/download/hs1.test/${id}`, {
        token: bob.accessToken,
      });
      assert.equal(r.status, 404, id);
      await assert.rejects(
        hs2.hs.federation.client.request("hs1.test", {
          method: "GET",
          path: `/_matrix/federation/v1/media/download/${id}`,
        }),
        (e: any) => e.status === 404 || e.status === 400,
        id,
      );
    }
    // Isolated mode: other servers' media, profiles and aliases are simply not here.
    const iso = await startInProcess({ serverName: "iso.test" });
    try {
      const s = await registerUser(iso.url, "carol");
      const m = await api(iso.url, "GET", "/_matrix/client/v1/media/download/hs1.test/abc", { token: s.accessToken });
      assert.equal(m.status, 404);
      assert.match(m.json.error, /federation is disabled/);
      const p = await api(iso.url, "GET", `/_matrix/client/v3/profile/${enc(alice.userId)}`, { token: s.accessToken });
      assert.equal(p.status, 404);
      const a = await api(iso.url, "GET", `/_matrix/client/v3/directory/room/${enc("#lobby:hs1.test")}`, {
        token: s.accessToken,
      });
      assert.equal(a.status, 404);
      const q = await ok(iso.url, "POST", "/_matrix/client/v3/keys/query", {
        token: s.accessToken,
        body: { device_keys: { [alice.userId]: [] } },
      });
      assert.deepEqual([q.device_keys, q.failures], [{}, {}]);
    } finally {
      await iso.dispose();
    }
    assert.equal((await api(hs2.url, "GET", "/_matrix/federation/v1/version")).status, 200, "hs2 still serving");
    assert.equal((await api(hs1.url, "GET", "/_matrix/federation/v1/version")).status, 200, "hs1 still serving");
  });

  test("media: uploaded on hs1, downloaded by a client of hs2, oversized refused, then from hs2's cache with hs1 down", async () => {
    const bytes = randomBytes(100_000);
    const up = await ok(hs1.url, "POST", "/_matrix/media/v3/upload?filename=noise.bin", {
      token: alice.accessToken,
      body: bytes,
      headers: { "Content-Type": "application/octet-stream" },
    });
    const mediaId = up.content_uri.split("/").pop();
    // The federation answer itself: multipart/mixed, JSON then the bytes.
    const res = await hs2.hs.federation.client.requestBytes(
      "hs1.test",
      { method: "GET", path: `/_matrix/federation/v1/media/download/${mediaId}` },
      1 << 20,
    );
    assert.equal(res.status, 200);
    assert.match(String(res.headers["content-type"]), /^multipart\/mixed; boundary=/);
    assert.ok(res.body.includes(bytes));

    const get = (path: string) =>
      fetch(`${hs2.url}${path}`, { headers: { Authorization: `Bearer ${bob.accessToken}` } });
    const first = await get(`/_matrix/client/v1/media/download/hs1.test/${mediaId}`);
    assert.equal(first.status, 200);
    assert.ok(Buffer.from(await first.arrayBuffer()).equals(bytes), "same bytes on hs2");
    assert.match(first.headers.get("content-disposition") ?? "", /noise\.bin/);

    // Thumbnails: hs1 serves one over federation (multipart, a real PNG); hs2's client gets one made from its copy.
    const png = await sharp({ create: { width: 1000, height: 750, channels: 3, background: { r: 200, g: 0, b: 0 } } })
      .png()
      .toBuffer();
    const pic = await ok(hs1.url, "POST", "/_matrix/media/v3/upload", {
      token: alice.accessToken,
      body: png,
      headers: { "Content-Type": "image/png" },
    });
    const picId = pic.content_uri.split("/").pop();
    const th = await hs2.hs.federation.client.requestBytes(
      "hs1.test",
      { method: "GET", path: `/_matrix/federation/v1/media/thumbnail/${picId}?width=300&height=200&method=scale` },
      1 << 20,
    );
    assert.equal(th.status, 200);
    const boundary = /boundary=(.+)$/.exec(String(th.headers["content-type"]))![1];
    const parts = parseMultipart(th.body, boundary);
    assert.deepEqual(JSON.parse(parts[0].body.toString()), {});
    assert.match(parts[1].headers["content-type"], /^image\//);
    const meta = await sharp(parts[1].body).metadata();
    assert.deepEqual([meta.width, meta.height], [320, 240], "the 320x240 scale size, made on hs1");
    const thumb = await get(`/_matrix/client/v1/media/thumbnail/hs1.test/${picId}?width=32&height=32&method=crop`);
    assert.equal(thumb.status, 200);
    const tm = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
    assert.deepEqual([tm.width, tm.height], [32, 32]);

    const big = await ok(hs1.url, "POST", "/_matrix/media/v3/upload", {
      token: alice.accessToken,
      body: randomBytes(REMOTE_MEDIA_LIMIT + 1000),
      headers: { "Content-Type": "application/octet-stream" },
    });
    const tooBig = await get(`/_matrix/client/v1/media/download/hs1.test/${big.content_uri.split("/").pop()}`);
    assert.equal(tooBig.status, 502);
    assert.equal((await tooBig.json()).errcode, "M_TOO_LARGE");
    const bigId = `remote:hs1.test/${big.content_uri.split("/").pop()}`;
    assert.equal(await hs2.hs.store.media.getMedia(bigId), null, "nothing kept of the refused file");
    assert.ok(await hs2.hs.store.media.getMedia(`remote:hs1.test/${mediaId}`), "the first file is cached");
    // The legacy unauthenticated route never fetches from other servers.
    const legacy = await fetch(`${hs2.url}/_matrix/media/v3/download/hs1.test/${mediaId}`);
    assert.equal(legacy.status, 404);
    const unknown = await get("/_matrix/client/v1/media/download/hs1.test/doesnotexist");
    assert.equal(unknown.status, 404);

    await hs1.dispose();
    const second = await get(`/_matrix/client/v1/media/download/hs1.test/${mediaId}`);
    assert.equal(second.status, 200, "served from hs2's remote media cache");
    assert.ok(Buffer.from(await second.arrayBuffer()).equals(bytes));
    const gone = await get("/_matrix/client/v1/media/download/hs1.test/neverfetched");
    assert.equal(gone.status, 502, "not cached and hs1 down");

    // Keys of a hs1 user sharing a room with dave (hs2) come from hs2's device-list cache, hs1 down or not.
    const dave = await loginUser(hs2.url, "dave");
    const carolId = "@carol:hs1.test";
    const [row] = await hs2.hs.store.deviceLists.getRemoteDeviceLists([carolId]);
    const q = await ok(hs2.url, "POST", "/_matrix/client/v3/keys/query", {
      token: dave.accessToken,
      body: { device_keys: { [carolId]: [] }, timeout: 2000 },
    });
    assert.deepEqual(q.failures, {});
    const withKeys = Object.keys(row.devices).filter((d) => row.devices[d].keys);
    assert.ok(withKeys.length > 0);
    assert.deepEqual(Object.keys(q.device_keys[carolId]).sort(), withKeys.sort());
    assert.equal((await api(hs2.url, "GET", "/_matrix/federation/v1/version")).status, 200);
  });
});
