/**
 * The federation sender's catch-up (sender.ts: owed local events read back from the timeline after a restart or an
 * overflow) against a real homeserver on SQLite. Only the network client is replaced: it records the transactions.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { homeserverPerFile } from "../../../test/e2e/helpers/homeserver.ts";
import type { AmiError } from "../../core/errors.ts";
import { silentLogger } from "../../core/logger.ts";
import type { FederationClient } from "./client.ts";
import { FederationSender } from "./sender.ts";

const ALICE = "@alice:localhost";
const BOB = "@bob:remote.test";

const server = homeserverPerFile("ami-catch-up-", { users: [ALICE] });

test("catch-up: an event the destination's users could never see is resent redacted (history visibility)", async () => {
  const { hs } = server.running;
  const { roomId } = await hs.rooms.createRoom(ALICE, { preset: "private_chat" }); // history_visibility shared
  // bob (remote.test) is invited, alice says something while he is only invited, then kicks him. remote.test has no
  // joined member at any time: the message was never sent to it. The invite and the kick were (member target), and
  // were owed to it when this server stopped (remote.test was down).
  const invite = await hs.rooms.setMembership({ roomId, sender: ALICE, target: BOB, membership: "invite" });
  const secret = await hs.rooms.sendEvent({
    roomId,
    sender: ALICE,
    type: "m.room.message",
    content: { msgtype: "m.text", body: "not for remote.test" },
  });
  const kick = await hs.rooms.setMembership({ roomId, sender: ALICE, target: BOB, membership: "leave" });
  const [inv, msg, kk] = await hs.store.events.getEvents([invite.eventId, secret.eventId, kick.eventId]);
  await hs.store.destinations.recordOwedPdus(["remote.test"], roomId, inv.stream);
  await hs.store.destinations.recordOwedPdus(["remote.test"], roomId, kk.stream);

  const sent: Record<string, unknown>[][] = [];
  const client = {
    async request(_dest: string, req: { body?: { pdus?: Record<string, unknown>[] } }) {
      sent.push(req.body?.pdus ?? []);
      return { pdus: {} };
    },
  } as unknown as FederationClient;
  const sender = new FederationSender({
    serverName: hs.serverName,
    cfg: { ...hs.config.federation, enabled: true },
    client,
    store: hs.store.destinations,
    log: silentLogger,
  });
  sender.prepareOwed = hs.federation.sender.prepareOwed;
  try {
    await sender.load();
    for (let i = 0; i < 200 && sent.flat().length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    const pdus = sent.flat();
    const bodyOf = (p: Record<string, unknown>) => (p.content as Record<string, unknown>).body;
    const withBody = pdus.filter((p) => bodyOf(p) !== undefined);
    assert.equal(withBody.length, 0, "the message remote.test's users could not see goes without its content");
    const types = pdus.map((p) => `${p.type}:${(p.content as Record<string, unknown>).membership ?? ""}`);
    assert.deepEqual(types, ["m.room.member:invite", "m.room.message:", "m.room.member:leave"]);
    assert.equal(pdus[1].origin_server_ts, msg.pdu.origin_server_ts, "the same event, redacted");
  } finally {
    sender.close();
  }
});

/** A sender on the homeserver's store whose network client is `request` (the catch-up's redaction as the real one). */
function senderWith(request: (dest: string, req: { body?: { pdus?: Record<string, unknown>[] } }) => Promise<unknown>) {
  const { hs } = server.running;
  const sender = new FederationSender({
    serverName: hs.serverName,
    cfg: { ...hs.config.federation, enabled: true, retryInitialMs: 60_000 },
    client: { request } as unknown as FederationClient,
    store: hs.store.destinations,
    log: silentLogger,
  });
  sender.prepareOwed = hs.federation.sender.prepareOwed;
  return sender;
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(ok(), what);
}

test("delivered position: a later event delivered first never skips an older one still undelivered", async () => {
  const { hs } = server.running;
  const { roomId } = await hs.rooms.createRoom(ALICE, { preset: "public_chat" });
  const send = (body: string) =>
    hs.rooms.sendEvent({ roomId, sender: ALICE, type: "m.room.message", content: { msgtype: "m.text", body } });
  const first = await send("older");
  const second = await send("newer");
  const [e1, e2] = await hs.store.events.getEvents([first.eventId, second.eventId]);
  // order.test was owed and delivered everything of the room before these two.
  await hs.store.destinations.recordOwedPdus(["order.test"], roomId, e1.stream - 1);
  await hs.store.destinations.markPdusSent("order.test", [{ roomId, stream: e1.stream - 1 }]);

  let calls = 0;
  let release = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const sender = senderWith(async () => {
    calls++;
    if (calls === 1) {
      await gate;
      return { pdus: {} };
    }
    throw new Error("connection refused"); // order.test goes down before the older event reaches it
  });
  try {
    // Handed over out of stream order (two concurrent sends): the newer one is in flight when the older is queued.
    sender.sendPdus(["order.test"], [e2.pdu], e2.stream);
    await until("the first transaction is in flight", () => calls === 1);
    sender.sendPdus(["order.test"], [e1.pdu], e1.stream);
    release();
    await until("the second transaction was tried", () => calls === 2);
    await new Promise((r) => setTimeout(r, 50));
    await sender.drained();
  } finally {
    sender.close();
  }
  // A restart now catches up from the delivered position: the older event must still be owed.
  const owed = await hs.store.destinations.owedPdus("order.test", hs.serverName, 10);
  assert.ok(
    owed.some((o) => o.eventId === first.eventId),
    `the older event is still owed (owed: ${owed.map((o) => o.stream)})`,
  );
});

test("crash after persisting an event, before its owed position is written: the restart still sends it", async () => {
  const { hs } = server.running;
  const CAROL = "@carol:crash.test";
  const { roomId } = await hs.rooms.createRoom(ALICE, { preset: "public_chat" });
  await hs.rooms.withRemote(roomId, (_head, persist) =>
    persist({
      eventId: `$${"c".repeat(43)}`,
      roomId,
      type: "m.room.member",
      stateKey: CAROL,
      sender: CAROL,
      originServerTs: Date.now(),
      depth: 10,
      pdu: { type: "m.room.member", state_key: CAROL, sender: CAROL, room_id: roomId, content: { membership: "join" } },
    }),
  );
  const before = await hs.rooms.sendEvent({
    roomId,
    sender: ALICE,
    type: "m.room.message",
    content: { msgtype: "m.text", body: "delivered" },
  });
  const [b] = await hs.store.events.getEvents([before.eventId]);
  // crash.test got everything up to `before`.
  await hs.store.destinations.recordOwedPdus(["crash.test"], roomId, b.stream);
  await hs.store.destinations.markPdusSent("crash.test", [{ roomId, stream: b.stream }]);

  const lost = await hs.rooms.sendEvent({
    roomId,
    sender: ALICE,
    type: "m.room.message",
    content: { msgtype: "m.text", body: "persisted, then the process died" },
  });
  const [e] = await hs.store.events.getEvents([lost.eventId]);
  // The crash point: the owed write never lands (the hook holds it forever), crash.test is down meanwhile.
  const store = hs.store.destinations;
  const crashing = new Proxy(store, {
    get(t, k) {
      if (k === "recordOwedPdus") return () => new Promise(() => {});
      const v = Reflect.get(t, k);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  const dying = new FederationSender({
    serverName: hs.serverName,
    cfg: { ...hs.config.federation, enabled: true, retryInitialMs: 60_000 },
    client: {
      // crash.test does not answer before the crash (no backoff is recorded either).
      request: () => new Promise(() => {}),
    } as unknown as FederationClient,
    store: crashing,
    log: silentLogger,
  });
  dying.sendPdus(["crash.test"], [e.pdu], e.stream);
  await new Promise((r) => setTimeout(r, 100));
  dying.close(); // never drained: the process is gone

  // Restart: a new sender on the same store, crash.test is back.
  const got: string[] = [];
  const restarted = senderWith(async (_dest, req) => {
    for (const p of req.body?.pdus ?? []) got.push(String((p.content as Record<string, unknown>).body));
    return { pdus: {} };
  });
  try {
    await restarted.load();
    await until("the event persisted before the crash reaches crash.test", () =>
      got.includes("persisted, then the process died"),
    );
    assert.ok(!got.includes("delivered"), "what was delivered is not sent again");
  } finally {
    restarted.close();
    await restarted.drained();
  }
});

test("to-device for other servers is bounded: destinations holding it, a rate per sender, expiry after failing 7 days", async () => {
  const { hs } = server.running;
  const mk = (cfg: Partial<typeof hs.config.federation>, request: () => Promise<unknown>) =>
    new FederationSender({
      serverName: hs.serverName,
      cfg: { ...hs.config.federation, enabled: true, retryInitialMs: 60_000, ...cfg },
      client: { request } as unknown as FederationClient,
      store: hs.store.destinations,
      log: silentLogger,
    });
  const edu = (n: number) => ({
    edu_type: "m.direct_to_device",
    content: { sender: ALICE, type: "m.test", message_id: `m${n}`, messages: {} },
  });
  const limited = (fn: () => Promise<void>) =>
    assert.rejects(
      fn,
      (e: Error & { code?: string }) => e.code === "M_LIMIT_EXCEEDED" || /M_LIMIT_EXCEEDED/.test(String(e)),
    );

  // Made-up servers that never answer: at most 2 may hold queued to-device EDUs.
  const hung = mk({ maxToDeviceDestinations: 2 }, () => new Promise(() => {}));
  try {
    for (const [i, d] of ["fake1.test", "fake2.test"].entries()) {
      await hung.admitToDevice(ALICE, [d]);
      await hung.sendToDevice(d, edu(i));
    }
    await until("both queued", () => hung.snapshot().filter((d) => d.inFlight).length === 2);
    await hung.admitToDevice(ALICE, ["fake1.test"]); // one already holding some: fine
    await limited(() => hung.admitToDevice(ALICE, ["fake3.test"]));
    await limited(() => hung.admitToDevice("@mallory:localhost", ["fake4.test", "fake1.test"]));
  } finally {
    hung.close();
    await hung.drained();
  }

  // A worker that does not send (the cluster's sender is another) has no queues: it counts the destinations
  // holding outbox rows in the store (fake1 and fake2 still hold theirs), and the rate is the cluster's count.
  const follower = mk({ maxToDeviceDestinations: 2, toDevicePerSenderPerMinute: 3 }, async () => ({}));
  follower.follow(() => {});
  const counted: [string, number][] = [];
  follower.sharedCount = async (key, n) => {
    counted.push([key, n]);
    return counted.length > 1 ? 1234 : 0;
  };
  try {
    await follower.admitToDevice(ALICE, ["fake1.test", "fake2.test"]); // both hold some already
    await limited(() => follower.admitToDevice(ALICE, ["fake3.test"]));
    assert.deepEqual(counted, [[`todevice:${ALICE}`, 2]], "a refused destination counts nothing");
    await assert.rejects(
      follower.admitToDevice(ALICE, ["fake1.test"]),
      (e: AmiError) => e.code === "M_LIMIT_EXCEEDED" && e.extra.retry_after_ms === 1234,
      "the cluster's count refuses, with its wait",
    );
  } finally {
    follower.close();
  }

  // A rate per local user (per server a message goes to).
  const rated = mk({ toDevicePerSenderPerMinute: 3 }, async () => ({}));
  try {
    await rated.admitToDevice(ALICE, ["r1.test", "r2.test"]);
    await rated.admitToDevice(ALICE, ["r3.test"]);
    await limited(() => rated.admitToDevice(ALICE, ["r4.test"]));
    await rated.admitToDevice("@bob:localhost", ["r4.test"]); // another user has their own
  } finally {
    rated.close();
  }

  // dead.test has failed since before its old EDU was queued 8 days ago: that one expires, a fresh one stays.
  const store = hs.store.destinations;
  const day = 86_400_000;
  await store.putDestination({
    destination: "dead.test",
    lastSuccessTs: Date.now() - 9 * day,
    failures: 40,
    retryIntervalMs: 600_000,
    nextRetryTs: Date.now() + 600_000,
  });
  await store.addOutboxEdu({ destination: "dead.test", seq: (Date.now() - 8 * day) * 1000, edu: edu(10) });
  await store.addOutboxEdu({ destination: "dead.test", seq: (Date.now() - 60_000) * 1000, edu: edu(11) });
  const restarted = mk({}, () => new Promise(() => {}));
  try {
    await restarted.load();
    await new Promise((r) => setTimeout(r, 50));
    await restarted.drained();
    const left = (await store.listOutbox()).filter((r) => r.destination === "dead.test");
    assert.deepEqual(
      left.map((r) => (r.edu.content as Record<string, unknown>).message_id),
      ["m11"],
      "only the fresh EDU is kept",
    );
  } finally {
    restarted.close();
    await restarted.drained();
  }
});
