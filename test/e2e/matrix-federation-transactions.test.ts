/**
 * Federation transactions between real homeservers on loopback (hs1.test, hs2.test in-process; hs3.test a socket
 * that accepts and never answers; dead.test a port nothing listens on): to-device messages from a client on hs1 to
 * a client on hs2 arrive in hs2's /sync; hs2 stopped and restarted gets what was queued for it; a hung hs3 does not
 * hold up hs2; replays are applied once; forged and malformed transactions are refused and the server stays up;
 * retry state and queued to-device messages survive a restart of the sender.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { loadRegistry } from "../../src/control/registry.ts";
import { silentLogger } from "../../src/core/logger.ts";
import type { OpContext } from "../../src/core/ops.ts";
import { runtimePaths } from "../../src/core/paths.ts";
import { signRequest } from "../../src/matrix/federation/x-matrix.ts";
import { matrixOps } from "../../src/matrix/ops/index.ts";
import { freePort } from "../../src/test/cli.ts";
import { waitFor } from "./helpers/client.ts";
import {
  type FedServer,
  register,
  sendToDevice,
  startFederation,
  type TestUser,
  ToDeviceInbox,
} from "./helpers/federation.ts";
import { tempDir } from "./helpers/homeserver.ts";

/** Poll every 50 ms for up to 60 s (helpers/client.ts waitFor). */
const until = <T>(what: string, fn: () => Promise<T>, ms = 60_000) => waitFor(what, fn, ms, 50);

describe("federation transactions: to-device over /send, outages, replays, forgeries", () => {
  let s: Record<string, FedServer>;
  let hs1: FedServer;
  let hs2: FedServer;
  let alice: TestUser;
  let bob: TestUser;
  let inbox: ToDeviceInbox;
  let blackhole: Server;
  const held: Socket[] = [];
  /** hs1's data dir is a runtime home's, so the ops find its signing key and service account. */
  const home = tempDir("ami-fedops-");

  before(async () => {
    blackhole = createServer((sock) => {
      held.push(sock);
      sock.on("error", () => {});
    });
    await new Promise<void>((r) => blackhole.listen(0, "127.0.0.1", r));
    const bhPort = (blackhole.address() as { port: number }).port;
    s = await startFederation(["hs1.test", "hs2.test"], {
      federation: { retryInitialMs: 200, retryMaxMs: 1000, requestTimeoutMs: 3000, maxQueuedToDevice: 5 },
      dataDirs: { "hs1.test": runtimePaths(home).serviceData("matrix") },
      extra: { "hs3.test": `http://127.0.0.1:${bhPort}`, "dead.test": `http://127.0.0.1:${await freePort()}` },
    });
    hs1 = s["hs1.test"];
    hs2 = s["hs2.test"];
    alice = await register(hs1.url, "alice");
    bob = await register(hs2.url, "bob");
    inbox = new ToDeviceInbox(hs2.url, bob);
    await inbox.poll(0);
  });

  after(async () => {
    for (const h of Object.values(s ?? {})) await h.dispose();
    for (const sock of held) sock.destroy();
    blackhole?.close();
    rmSync(home, { recursive: true, force: true });
  });

  test("a to-device message from alice on hs1 arrives in bob's /sync on hs2, sender and content intact", async () => {
    await sendToDevice(hs1.url, alice, "t1", { [bob.userId]: { [bob.deviceId]: { hello: "bob" } } }, "m.hello");
    const [ev, ...rest] = await inbox.take(1);
    assert.deepEqual(ev, { sender: alice.userId, type: "m.hello", content: { hello: "bob" } });
    assert.deepEqual(rest, []);
    const st = (await hs1.hs.federation.sender.status()).find((d) => d.destination === "hs2.test");
    assert.equal(st?.failures, 0);
    assert.ok(st?.lastSuccessTs, "a success recorded");
    assert.ok((st?.sentTxns ?? 0) >= 1);
  });

  test("a hung hs3 does not hold up delivery to hs2", async () => {
    // One request to both servers: hs3's transaction hangs (accepted, never answered) while hs2's goes through.
    await sendToDevice(hs1.url, alice, "t2", {
      "@carol:hs3.test": { DEV: { to: "carol" } },
      [bob.userId]: { [bob.deviceId]: { to: "bob" } },
    });
    const got = await inbox.take(1);
    assert.deepEqual(
      got.map((e) => e.content),
      [{ to: "bob" }],
    );
    const hs3 = await until("hs3's queue", async () =>
      hs1.hs.federation.sender.snapshot().find((d) => d.destination === "hs3.test"),
    );
    assert.equal(hs3.queuedEdus, 1, "hs3's EDU still undelivered when bob had his");
    assert.equal(hs3.lastSuccessTs, null);
  });

  test("hs2 stopped: queued to-device messages arrive, in order, after it is back; retry state is persisted", async () => {
    await hs2.stop();
    for (let i = 0; i < 5; i++)
      await sendToDevice(hs1.url, alice, `out${i}`, { [bob.userId]: { [bob.deviceId]: { seq: i } } });
    const down = await until("hs1 to back off hs2", async () => {
      const r = await hs1.hs.store.destinations.getDestination("hs2.test");
      return r && r.failures >= 1 ? r : null;
    });
    assert.ok(down.nextRetryTs > 0 && down.retryIntervalMs >= 200 && down.retryIntervalMs <= 1000);
    const st = (await hs1.hs.federation.sender.status()).find((d) => d.destination === "hs2.test");
    assert.equal(st?.queuedEdus, 5, "all five held (different message ids are not coalesced)");
    await hs2.start();
    // The same client, syncing on from its token: a restart keeps the inbox and the token.
    const got = await inbox.take(5);
    assert.deepEqual(
      got.map((e) => e.content.seq),
      [0, 1, 2, 3, 4],
    );
    const healed = await until("hs2's state healed", async () => {
      const r = await hs1.hs.store.destinations.getDestination("hs2.test");
      return r && r.failures === 0 ? r : null;
    });
    assert.equal(healed.nextRetryTs, 0);
    assert.ok(healed.lastSuccessTs);
  });

  test("a dead server's backoff survives a restart of the sender; retry resets it", async () => {
    await sendToDevice(hs1.url, alice, "dead1", { "@x:dead.test": { D: { n: 1 } } });
    await until("dead.test backing off", async () => {
      const r = await hs1.hs.store.destinations.getDestination("dead.test");
      return r && r.failures >= 1;
    });
    await hs1.stop();
    await hs1.start();
    const st = (await hs1.hs.federation.sender.status()).find((d) => d.destination === "dead.test");
    assert.ok(st && st.failures >= 1, "failures remembered across the restart");
    assert.equal(st.queuedEdus, 1, "its to-device message came back from the durable outbox");
    assert.equal(st.queuedToDevice, 1);
    assert.equal(await hs1.hs.federation.sender.wake("dead.test"), true);
    const row = await hs1.hs.store.destinations.getDestination("dead.test");
    assert.equal(row?.failures, 0);
    assert.equal(row?.nextRetryTs, 0);
  });

  test("ops: status, destinations, retry (as the CLI and MCP run them)", async () => {
    const ctx: OpContext = {
      config: hs1.config!,
      configPath: undefined,
      registry: (only) => loadRegistry(hs1.config!, only),
      paths: runtimePaths(home),
      log: silentLogger,
      progress: () => {},
      signal: new AbortController().signal,
      print: () => {},
      interactive: false,
    };
    const run = async (name: string, input: Record<string, unknown> = {}): Promise<any> => {
      const d = matrixOps.find((o) => o.name === name)!;
      const out = await d.run(d.input.parse(input), ctx);
      d.output.parse(out);
      assert.equal(typeof d.human?.(out), "string");
      return out;
    };
    await sendToDevice(hs1.url, alice, "dead2", { "@x:dead.test": { D: { n: 2 } } });
    await until("dead.test backing off again", async () => {
      const r = await hs1.hs.store.destinations.getDestination("dead.test");
      return r && r.failures >= 1;
    });
    const st = await run("matrix.federation.status");
    assert.equal(st.enabled, true);
    assert.equal(st.serverName, "hs1.test");
    assert.equal(st.keyId, hs1.hs.signingKey.keyId);
    // hs3's to-device message (its socket never answers) came back from the outbox with hs1's restart: listed.
    assert.equal(st.destinations, 3);
    // dead.test's backoff is 200 ms-1 s in this test: it may have run out by now (its row is checked below).
    assert.ok(st.backingOff >= 0 && st.backingOff <= st.destinations);
    const { destinations } = await run("matrix.federation.destinations");
    assert.deepEqual(
      destinations.map((d: any) => d.destination).filter((d: string) => d !== "hs3.test"),
      ["dead.test", "hs2.test"],
    );
    const dead = destinations.find((d: any) => d.destination === "dead.test");
    assert.ok(dead.failures >= 1 && dead.backoffUntil !== null && dead.lastSuccessTs === null);
    assert.equal(dead.queuedEdus, 2, "dead1 (kept across the restart) and dead2");
    const hs2row = destinations.find((d: any) => d.destination === "hs2.test");
    assert.ok(hs2row.lastSuccessTs !== null && hs2row.failures === 0 && hs2row.queuedEdus === 0);
    // The monitor's figures and Prometheus carry the per-destination queue, last success and backoff.
    const stats = await (await fetch(`${hs1.url}/_ami/stats`)).json();
    assert.equal(stats.federation_destinations, 3);
    assert.ok("federation_dest_hs2.test_last_success_s_ago" in stats);
    const prom = await (await fetch(`${hs1.url}/metrics`)).text();
    assert.match(prom, /ami_matrix_federation_queued_edus\{destination="dead.test"\} 2/);
    assert.match(prom, /ami_matrix_federation_last_success_timestamp_seconds\{destination="hs2.test"\} \d/);
    const r = await run("matrix.federation.retry", { server: "dead.test" });
    assert.deepEqual(r, { server: "dead.test", wasBackingOff: true });
    await assert.rejects(run("matrix.federation.retry", { server: "unknown.test" }), /Unknown destination/);
  });

  test("a dead server's queue is bounded: to-device capped, typing not held, presence coalesced", async () => {
    const sender = hs1.hs.federation.sender;
    const dead = async () => (await sender.status()).find((d) => d.destination === "dead.test")!;
    await until("dead.test backing off", async () => (await dead()).backoffUntil !== null);
    const before = await dead();
    for (let i = 0; i < 8; i++) await sendToDevice(hs1.url, alice, `cap${i}`, { "@x:dead.test": { D: { i } } });
    const capped = await dead();
    // Every EDU is queued, in the transaction held for retry, or dropped; queued to-device ones never exceed 5.
    assert.equal(capped.queuedEdus + capped.dropped, before.queuedEdus + before.dropped + 8);
    assert.ok(capped.queuedToDevice <= 5, `${capped.queuedToDevice} queued`);
    assert.ok(capped.dropped >= before.dropped + 3, "the oldest beyond the bound dropped");
    sender.sendEdu(["dead.test"], { edu_type: "m.typing", content: { room_id: "!r:hs1.test", user_id: alice.userId } });
    assert.equal((await dead()).dropped, capped.dropped + 1, "typing to a server backing off is not held");
    for (const presence of ["online", "unavailable", "offline"])
      sender.sendEdu(
        ["dead.test"],
        { edu_type: "m.presence", content: { push: [{ user_id: alice.userId, presence }] } },
        alice.userId,
      );
    assert.equal((await dead()).queuedEdus, capped.queuedEdus + 1, "three presence updates, one queued");
  });

  describe("incoming /send, signed by hs1 by hand", () => {
    const uri = (txnId: string) => `/_matrix/federation/v1/send/${txnId}`;
    const put = (txnId: string, body: any, over: { origin?: string; raw?: string } = {}) =>
      fetch(`${hs2.url}${uri(txnId)}`, {
        method: "PUT",
        headers: {
          "Content-Type": "application/json",
          Authorization: signRequest(
            { method: "PUT", uri: uri(txnId), origin: "hs1.test", destination: "hs2.test", content: body },
            hs1.hs.signingKey,
          ),
        },
        body: over.raw ?? JSON.stringify(body),
      });
    const txn = (edus: unknown[], pdus: unknown[] = [], origin = "hs1.test") => ({
      origin,
      origin_server_ts: Date.now(),
      pdus,
      edus,
    });
    const toDevice = (messageId: string, content: unknown, sender = alice.userId) => ({
      edu_type: "m.direct_to_device",
      content: {
        sender,
        type: "m.direct",
        message_id: messageId,
        messages: { [bob.userId]: { [bob.deviceId]: content } },
      },
    });
    /** bob's to-device events up to and including a marker sent after the rest. */
    const upToMarker = async (marker: string) => {
      const r = await put(`marker-${marker}`, txn([toDevice(`marker-${marker}`, { marker })]));
      assert.equal(r.status, 200);
      const out: any[] = [];
      while (!out.some((e) => e.content.marker === marker)) out.push(...(await inbox.poll()));
      return out.filter((e) => e.content.marker === undefined);
    };

    test("a replayed transaction is answered the same and applied once; a reused message_id once too", async () => {
      const body = txn([toDevice("m-replay", { n: 1 })]);
      const first = await put("replay1", body);
      assert.equal(first.status, 200);
      const a = await first.json();
      const again = await put("replay1", body);
      assert.equal(again.status, 200);
      assert.deepEqual(await again.json(), a);
      // Another transaction carrying the same message_id (a resend after a lost answer): deduped by message_id.
      assert.equal((await put("replay2", body)).status, 200);
      const got = await upToMarker("r");
      assert.deepEqual(
        got.map((e) => e.content),
        [{ n: 1 }],
      );
      assert.ok(hs2.hs.federation.inbound.replayed >= 1);
    });

    test("a PDU for a room hs2 does not know: an error for that PDU, nothing applied", async () => {
      const r = await put("pdu1", txn([], [{ event_id: "$abc", type: "m.room.message", room_id: "!r:hs1.test" }]));
      assert.equal(r.status, 200);
      const b = await r.json();
      assert.match(b.pdus.$abc.error, /unknown room/);
    });

    test("forged: an EDU for another server's user is dropped; another origin in the body is refused", async () => {
      const r = await put("forge1", txn([toDevice("m-forged", { forged: true }, "@mallory:hs3.test")]));
      assert.equal(r.status, 200, "EDUs are best effort: the transaction stands, the EDU is dropped");
      const got = await upToMarker("f");
      assert.deepEqual(got, []);
      const dropped = hs2.hs.federation.inbound.edusDropped;
      assert.ok(dropped >= 1);
      // Typing for a room the user is not joined to, and receipts likewise: dropped.
      const t = await put(
        "forge2",
        txn([
          { edu_type: "m.typing", content: { room_id: "!nope:hs2.test", user_id: alice.userId, typing: true } },
          { edu_type: "m.typing", content: { room_id: "!nope:hs2.test", user_id: "@eve:hs3.test", typing: true } },
          {
            edu_type: "m.receipt",
            content: { "!nope:hs2.test": { "m.read": { [alice.userId]: { event_ids: ["$e"], data: { ts: 1 } } } } },
          },
          { edu_type: "m.presence", content: { push: [{ user_id: "@eve:hs3.test", presence: "online" }] } },
        ]),
      );
      assert.equal(t.status, 200);
      assert.equal(hs2.hs.federation.inbound.edusDropped, dropped + 4);
      const o = await put("forge3", txn([], [], "hs3.test"));
      assert.equal(o.status, 403);
      assert.equal((await o.json()).errcode, "M_FORBIDDEN");
    });

    test("typing, receipts, presence of a remote member apply; bob's own go out to hs1", async () => {
      const auth = { Authorization: `Bearer ${bob.token}`, "Content-Type": "application/json" };
      const cr = await fetch(`${hs2.url}/_matrix/client/v3/createRoom`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ preset: "public_chat" }),
      });
      const { room_id: roomId } = await cr.json();
      // Stand-in for a federated join (make_join/send_join are the room DAG's work): alice joined in hs2's state.
      await hs2.hs.rooms.setMembership({ roomId, sender: alice.userId, target: alice.userId, membership: "join" });
      const sent = await fetch(`${hs2.url}/_matrix/client/v3/rooms/${roomId}/send/m.room.message/m1`, {
        method: "PUT",
        headers: auth,
        body: JSON.stringify({ msgtype: "m.text", body: "hi" }),
      });
      const { event_id: eventId } = await sent.json();
      const dropped = hs2.hs.federation.inbound.edusDropped;
      const r = await put(
        "ephemeral1",
        txn([
          { edu_type: "m.typing", content: { room_id: roomId, user_id: alice.userId, typing: true } },
          {
            edu_type: "m.receipt",
            content: { [roomId]: { "m.read": { [alice.userId]: { event_ids: [eventId], data: { ts: 1 } } } } },
          },
          { edu_type: "m.presence", content: { push: [{ user_id: alice.userId, presence: "online" }] } },
        ]),
      );
      assert.equal(r.status, 200);
      assert.equal(hs2.hs.federation.inbound.edusDropped, dropped, "all three applied");
      // bob's full sync shows them.
      const full = await (
        await fetch(`${hs2.url}/_matrix/client/v3/sync`, { headers: { Authorization: `Bearer ${bob.token}` } })
      ).json();
      const eph = full.rooms.join[roomId].ephemeral.events;
      const typing = eph.find((e: any) => e.type === "m.typing");
      assert.deepEqual(typing.content.user_ids, [alice.userId]);
      const receipt = eph.find((e: any) => e.type === "m.receipt");
      assert.ok(receipt.content[eventId]["m.read"][alice.userId], "alice's receipt");
      const pres = full.presence.events.find((e: any) => e.sender === alice.userId);
      assert.equal(pres?.content.presence, "online");

      // bob types: an m.typing EDU goes to hs1 (alice's server), which has no such room and drops it.
      const typingsAt = () => hs1.hs.federation.inbound.edusByType.get("m.typing") ?? 0;
      const hs1Typings = typingsAt();
      const hs1Dropped = hs1.hs.federation.inbound.edusDropped;
      const t = await fetch(`${hs2.url}/_matrix/client/v3/rooms/${roomId}/typing/${bob.userId}`, {
        method: "PUT",
        headers: auth,
        body: JSON.stringify({ typing: true, timeout: 10000 }),
      });
      assert.equal(t.status, 200);
      await until("hs1 to get bob's typing", async () => typingsAt() > hs1Typings);
      // hs1 has no such room: dropped there (counted with bob's presence, which went out the same way).
      await until("hs1 to drop it", async () => hs1.hs.federation.inbound.edusDropped > hs1Dropped);
    });

    test("oversized and malformed transactions are 400s; the server stays up", async () => {
      const pdus = Array.from({ length: 51 }, (_, i) => ({ event_id: `$${i}` }));
      const cases: [string, Response, number, string][] = [
        ["51 PDUs", await put("big1", txn([], pdus)), 400, "M_BAD_JSON"],
        ["101 EDUs", await put("big2", txn(Array.from({ length: 101 }, () => toDevice("x", {})))), 400, "M_BAD_JSON"],
        ["no pdus", await put("bad1", { origin: "hs1.test", origin_server_ts: 1 }), 400, "M_BAD_JSON"],
        ["pdus not a list", await put("bad2", { ...txn([]), pdus: {} }), 400, "M_BAD_JSON"],
        ["malformed JSON", await put("bad3", {}, { raw: '{"origin": "hs1.test",' }), 400, "M_NOT_JSON"],
        [
          "body over the JSON limit",
          await put("bad4", {}, { raw: JSON.stringify({ ...txn([]), pad: "x".repeat(1_100_000) }) }),
          413,
          "M_TOO_LARGE",
        ],
      ];
      for (const [what, r, status, code] of cases) {
        assert.equal(r.status, status, what);
        assert.equal((await r.json()).errcode, code, what);
      }
      // The replay cache did not remember the refused ones: a valid body under the same txnId is applied.
      assert.equal((await put("big1", txn([]))).status, 200);
      assert.equal((await fetch(`${hs2.url}/_matrix/federation/v1/version`)).status, 200, "still serving");
    });
  });
});
