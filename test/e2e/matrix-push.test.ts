/**
 * Push notifications end to end, on both backends: a real push gateway (node:http in this test) receives what the
 * Push Gateway API says when another user messages a room (the body checked against the spec's OpenAPI); a
 * `rejected` pushkey loses its pusher; a gateway that fails or hangs gets retries and never holds up a send;
 * /notifications pages newest first with `only=highlight` and `read`; pushers/set refuses bad input with the
 * right errcode; a logout deletes the device's pushers; matrix-js-sdk's setPusher/getPushers work.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { Push } from "../../src/matrix/service/push.ts";
import { assertSpec, specRequestErrors } from "../../src/test/spec-schema.ts";
import { api, enc, loginUser, ok, registerUser, type Session, sdkClient, waitFor } from "./helpers/client.ts";
import { BACKENDS, createTestDatabase, startInProcess, type TestDatabase, tempDir } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const NOTIFY = "/_matrix/push/v1/notify";

type Mode = "ok" | "reject" | "fail" | "hang" | "garbage";

/** A push gateway: records every POST; answers per `mode`. */
class Gateway {
  mode: Mode = "ok";
  readonly received: { path: string; body: any; at: number }[] = [];
  readonly held: ServerResponse[] = [];
  server!: Server;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        let body: any;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          body = undefined;
        }
        this.received.push({ path: req.url ?? "", body, at: Date.now() });
        const pushkeys: string[] = (body?.notification?.devices ?? []).map((d: any) => d.pushkey);
        switch (this.mode) {
          case "ok":
            res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ rejected: [] }));
            break;
          case "reject":
            res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ rejected: pushkeys }));
            break;
          case "fail":
            res.writeHead(502).end("<html>bad gateway</html>");
            break;
          case "hang":
            this.held.push(res);
            break;
          case "garbage":
            res.writeHead(200, { "content-type": "application/json" }).end(Buffer.alloc(1 << 20, "{["));
            break;
        }
      });
    });
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${NOTIFY}`;
  }

  /** Notifications received for an event. */
  forEvent(eventId: string) {
    return this.received.filter((r) => r.body?.notification?.event_id === eventId);
  }

  async stop(): Promise<void> {
    for (const r of this.held.splice(0)) r.destroy();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

const pusherBody = (url: string, over: Record<string, unknown> = {}) => ({
  kind: "http",
  app_id: "org.example.push",
  pushkey: "pk-bob",
  app_display_name: "Example",
  device_display_name: "Bob's phone",
  lang: "en",
  data: { url },
  ...over,
});

for (const backend of BACKENDS) {
  describe(`push notifications (${backend})`, () => {
    let db: TestDatabase;
    let dbDir = "";
    let hs: Awaited<ReturnType<typeof startInProcess>>;
    let base: string;
    const gw = new Gateway();
    let alice: Session;
    let bob: Session;
    let roomId: string;
    let txn = 0;

    const send = async (s: Session, content: Record<string, unknown>) =>
      (
        await ok(base, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/t${txn++}`, {
          token: s.accessToken,
          body: content,
        })
      ).event_id as string;

    before(async () => {
      dbDir = tempDir();
      db = await createTestDatabase(backend, dbDir);
      hs = await startInProcess({
        database: db.database,
        push: { retryInitialMs: 50, retryMaxMs: 200, timeoutMs: 1500, queueMax: 10 },
      });
      base = hs.url;
      await gw.start();
      alice = await registerUser(base, "alice");
      bob = await registerUser(base, "bob");
      roomId = (await ok(base, "POST", `${C}/createRoom`, { token: alice.accessToken, body: { name: "Push room" } }))
        .room_id;
      await ok(base, "POST", `${C}/rooms/${enc(roomId)}/invite`, {
        token: alice.accessToken,
        body: { user_id: bob.userId },
      });
      await ok(base, "POST", `${C}/join/${enc(roomId)}`, { token: bob.accessToken, body: {} });
      // A third member, so the room is not a one-to-one room (those notify with a sound).
      const carol = await registerUser(base, "carol");
      await ok(base, "POST", `${C}/rooms/${enc(roomId)}/invite`, {
        token: alice.accessToken,
        body: { user_id: carol.userId },
      });
      await ok(base, "POST", `${C}/join/${enc(roomId)}`, { token: carol.accessToken, body: {} });
    });

    after(async () => {
      await gw.stop();
      await hs?.dispose();
      await db?.drop();
      rmSync(dbDir, { recursive: true, force: true });
    });

    it("pushers/set refuses bad input with the spec's errcodes", async () => {
      const bad: [Record<string, unknown>, number, string][] = [
        [{ ...pusherBody(gw.url), kind: undefined }, 400, "M_MISSING_PARAM"],
        [{ ...pusherBody(gw.url), app_id: undefined }, 400, "M_MISSING_PARAM"],
        [{ ...pusherBody(gw.url), lang: undefined }, 400, "M_MISSING_PARAM"],
        [{ ...pusherBody(gw.url), data: undefined }, 400, "M_MISSING_PARAM"],
        [pusherBody("http://127.0.0.1:1/notify"), 400, "M_INVALID_PARAM"],
        [pusherBody("ftp://127.0.0.1/_matrix/push/v1/notify"), 400, "M_INVALID_PARAM"],
        [pusherBody("not a url"), 400, "M_INVALID_PARAM"],
        [pusherBody(gw.url, { data: { url: 7 } }), 400, "M_INVALID_PARAM"],
        [pusherBody(gw.url, { data: {} }), 400, "M_MISSING_PARAM"],
        [pusherBody(gw.url, { data: { url: gw.url, format: "full" } }), 400, "M_INVALID_PARAM"],
        [pusherBody(gw.url, { kind: "sms" }), 400, "M_INVALID_PARAM"],
        [pusherBody(gw.url, { kind: 5 }), 400, "M_BAD_JSON"],
        [pusherBody(gw.url, { append: "yes" }), 400, "M_BAD_JSON"],
        [pusherBody(gw.url, { app_id: "x".repeat(65) }), 400, "M_INVALID_PARAM"],
        [pusherBody(gw.url, { pushkey: "k".repeat(513) }), 400, "M_INVALID_PARAM"],
        [pusherBody(gw.url, { data: [] }), 400, "M_BAD_JSON"],
      ];
      for (const [body, status, errcode] of bad) {
        const r = await api(base, "POST", `${C}/pushers/set`, { token: bob.accessToken, body });
        assert.equal(r.status, status, `${JSON.stringify(body)} -> ${r.text}`);
        assert.equal(r.json?.errcode, errcode, `${JSON.stringify(body)} -> ${r.text}`);
      }
      const email = await api(base, "POST", `${C}/pushers/set`, {
        token: bob.accessToken,
        body: pusherBody(gw.url, { kind: "email", pushkey: "bob@example.org", data: {} }),
      });
      assert.equal(email.status, 400);
      assert.match(email.json.error, /[Ee]mail pushers are not supported/);
      assert.deepEqual((await ok(base, "GET", `${C}/pushers`, { token: bob.accessToken })).pushers, []);
    });

    it("a message from another user reaches the gateway as the Push Gateway API says", async () => {
      await ok(base, "POST", `${C}/pushers/set`, {
        token: bob.accessToken,
        body: pusherBody(gw.url, { profile_tag: "tag1", data: { url: gw.url, brand: "x" } }),
      });
      const listed = await ok(base, "GET", `${C}/pushers`, { token: bob.accessToken });
      assertSpec("pusher.yaml", "/pushers", "GET", 200, listed);
      assert.deepEqual(listed.pushers, [
        {
          pushkey: "pk-bob",
          kind: "http",
          app_id: "org.example.push",
          app_display_name: "Example",
          device_display_name: "Bob's phone",
          profile_tag: "tag1",
          lang: "en",
          data: { url: gw.url, brand: "x" },
        },
      ]);
      const eventId = await send(alice, { msgtype: "m.text", body: "hello there" });
      const got = await waitFor("the push", () => gw.forEvent(eventId)[0]);
      assert.equal(got.path, NOTIFY);
      assert.deepEqual(specRequestErrors("push-gateway/push_notifier.yaml", "/notify", "POST", got.body), []);
      const n = got.body.notification;
      assert.equal(n.room_id, roomId);
      assert.equal(n.type, "m.room.message");
      assert.equal(n.sender, alice.userId);
      assert.equal(n.sender_display_name, "alice");
      assert.equal(n.room_name, "Push room");
      assert.deepEqual(n.content, { msgtype: "m.text", body: "hello there" });
      assert.equal(n.prio, "low");
      assert.ok(n.counts.unread >= 1);
      assert.equal(n.devices.length, 1);
      const d = n.devices[0];
      assert.equal(d.app_id, "org.example.push");
      assert.equal(d.pushkey, "pk-bob");
      assert.deepEqual(d.data, { brand: "x" }, "data without url");
      assert.ok(Number.isInteger(d.pushkey_ts) && d.pushkey_ts > 1_600_000_000 && d.pushkey_ts < 1e11);
      assert.deepEqual(d.tweaks, { highlight: false });
      // The sender's own messages are not pushed to them; nor is anything to alice, who has no pusher.
      const own = await send(bob, { msgtype: "m.text", body: "my own" });
      const later = await send(alice, { msgtype: "m.text", body: "after" });
      await waitFor("the next push", () => gw.forEvent(later).length > 0);
      assert.equal(gw.forEvent(own).length, 0);
    });

    it("a mention is pushed with highlight and high priority; event_id_only sends no content", async () => {
      await ok(base, "POST", `${C}/pushers/set`, {
        token: bob.accessToken,
        body: pusherBody(gw.url, { data: { url: gw.url, format: "event_id_only" } }),
      });
      const eventId = await send(alice, {
        msgtype: "m.text",
        body: "bob: look",
        "m.mentions": { user_ids: [bob.userId] },
      });
      const got = await waitFor("the push", () => gw.forEvent(eventId)[0]);
      assert.deepEqual(specRequestErrors("push-gateway/push_notifier.yaml", "/notify", "POST", got.body), []);
      const n = got.body.notification;
      assert.equal(n.prio, "high");
      assert.equal(n.content, undefined);
      assert.equal(n.type, undefined);
      assert.deepEqual(n.devices[0].data, { format: "event_id_only" });
      assert.deepEqual(n.devices[0].tweaks, { sound: "default", highlight: true });
    });

    it("/notifications: newest first, only=highlight, pagination, read from receipts", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await send(alice, { msgtype: "m.text", body: `page ${i}` }));
      const all = await waitFor("recorded notifications", async () => {
        const r = await ok(base, "GET", `${C}/notifications?limit=100`, { token: bob.accessToken });
        return r.notifications.some((x: any) => x.event.event_id === ids[4]) ? r : null;
      });
      assertSpec("notifications.yaml", "/notifications", "GET", 200, all);
      const streamOrder = all.notifications.map((x: any) => x.event.event_id);
      assert.deepEqual(streamOrder.slice(0, 5), [...ids].reverse());
      assert.ok(all.notifications.every((x: any) => x.room_id === roomId && x.read === false));
      assert.ok(all.notifications.every((x: any) => x.event.sender !== bob.userId));
      assert.equal(all.next_token, undefined);
      // Pages of two, following next_token, give the same list.
      const paged: string[] = [];
      let from: string | undefined;
      for (;;) {
        const q = `${C}/notifications?limit=2${from ? `&from=${enc(from)}` : ""}`;
        const page = await ok(base, "GET", q, { token: bob.accessToken });
        assertSpec("notifications.yaml", "/notifications", "GET", 200, page);
        paged.push(...page.notifications.map((x: any) => x.event.event_id));
        if (!page.next_token) break;
        from = page.next_token;
      }
      assert.deepEqual(paged, streamOrder);
      const hl = await ok(base, "GET", `${C}/notifications?only=highlight`, { token: bob.accessToken });
      assert.equal(hl.notifications.length, 1);
      assert.equal(hl.notifications[0].event.content.body, "bob: look");
      assert.ok(hl.notifications[0].actions.includes("notify"));
      // Alice's own messages are never hers to be notified of: only bob's one message is.
      const alices = (await ok(base, "GET", `${C}/notifications`, { token: alice.accessToken })).notifications;
      assert.deepEqual(
        alices.map((x: any) => [x.event.sender, x.event.content.body]),
        [[bob.userId, "my own"]],
      );
      // A read receipt on the third newest marks it and older ones read.
      await ok(base, "POST", `${C}/rooms/${enc(roomId)}/receipt/m.read/${enc(ids[2])}`, {
        token: bob.accessToken,
        body: {},
      });
      const after = await ok(base, "GET", `${C}/notifications?limit=100`, { token: bob.accessToken });
      assert.deepEqual(
        after.notifications.map((x: any) => x.read),
        streamOrder.map((_: string, i: number) => i >= 2),
      );
      const bad = await api(base, "GET", `${C}/notifications?from=zzz`, { token: bob.accessToken });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.errcode, "M_INVALID_PARAM");
      // Retention: nothing fresh is trimmed; 31 days on, everything recorded is.
      assert.equal(await hs.hs.push.trimNotifications(), 0);
      assert.ok((await hs.hs.push.trimNotifications(Date.now() + 31 * 86_400_000)) >= 6);
      const gone = await ok(base, "GET", `${C}/notifications`, { token: bob.accessToken });
      assert.deepEqual(gone.notifications, []);
    });

    it("a failing gateway gets retries with backoff and does not hold up sends", async () => {
      gw.mode = "fail";
      const t0 = Date.now();
      const eventId = await send(alice, { msgtype: "m.text", body: "while the gateway fails" });
      const sentIn = Date.now() - t0;
      const tries = await waitFor("four tries", () => (gw.forEvent(eventId).length >= 4 ? gw.forEvent(eventId) : null));
      // Backoff: the gaps grow (50, 100, 200 ms, bounded by retryMaxMs).
      const gaps = tries.slice(1).map((t, i) => t.at - tries[i].at);
      assert.ok(gaps[2] >= gaps[0], `gaps ${gaps}`);
      gw.mode = "ok";
      const n = gw.forEvent(eventId).length;
      await waitFor("delivery after the gateway is back", () => gw.forEvent(eventId).length > n);
      await new Promise((r) => setTimeout(r, 400));
      // Delivered once it succeeded: no more retries of it.
      assert.equal(gw.forEvent(eventId).length, n + 1, `the send took ${sentIn} ms`);
    });

    it("a gateway that hangs does not hold up sends; the POST times out and is retried; the queue is bounded", async () => {
      const { stats } = (hs.hs.push as Push).delivery;
      const dropped0 = stats.dropped;
      gw.mode = "hang";
      const first = await send(alice, { msgtype: "m.text", body: "hang 1" });
      await waitFor("the held POST", () => gw.forEvent(first).length > 0);
      // While that POST hangs, more sends are answered; past queueMax (10) the oldest waiting are dropped.
      const more: string[] = [];
      for (let i = 0; i < 14; i++) more.push(await send(alice, { msgtype: "m.text", body: `while hanging ${i}` }));
      await waitFor("all evaluated", () => stats.dropped - dropped0 >= 4);
      assert.ok(gw.held.length >= 1);
      assert.ok(
        more.every((id) => gw.forEvent(id).length === 0),
        "queued behind the hanging POST",
      );
      assert.equal((hs.hs.push as Push).delivery.pending, 10);
      // timeoutMs 1500: the same notification is tried again.
      await waitFor("a retry after the timeout", () => gw.forEvent(first).length >= 2, 10_000);
      gw.mode = "ok";
      for (const r of gw.held.splice(0)) r.destroy();
      // The queue drains once the gateway answers again: the newest ten, not the four dropped.
      await waitFor("the queued pushes", () => more.slice(4).every((id) => gw.forEvent(id).length > 0), 20_000);
      assert.ok(more.slice(0, 4).every((id) => gw.forEvent(id).length === 0));
      assert.equal(stats.dropped - dropped0, 4);
    });

    it("a gateway answering 200 with a large garbage body: delivered once, the pusher kept", async () => {
      gw.mode = "garbage";
      const eventId = await send(alice, { msgtype: "m.text", body: "garbage answer" });
      await waitFor("the push", () => gw.forEvent(eventId).length > 0);
      const next = await send(alice, { msgtype: "m.text", body: "after garbage" });
      await waitFor("the next push", () => gw.forEvent(next).length > 0);
      assert.equal(gw.forEvent(eventId).length, 1);
      assert.equal((await ok(base, "GET", `${C}/pushers`, { token: bob.accessToken })).pushers.length, 1);
      gw.mode = "ok";
    });

    it("a rejected pushkey loses its pusher", async () => {
      gw.mode = "reject";
      const eventId = await send(alice, { msgtype: "m.text", body: "to be rejected" });
      await waitFor("the rejected push", () => gw.forEvent(eventId).length > 0);
      await waitFor("the pusher gone", async () => {
        const r = await ok(base, "GET", `${C}/pushers`, { token: bob.accessToken });
        return r.pushers.length === 0;
      });
      gw.mode = "ok";
      const n = gw.received.length;
      const next = await send(alice, { msgtype: "m.text", body: "nobody to push to" });
      await waitFor("recorded", async () => {
        const r = await ok(base, "GET", `${C}/notifications?limit=1`, { token: bob.accessToken });
        return r.notifications[0]?.event.event_id === next;
      });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(gw.forEvent(next).length, 0);
      assert.ok(gw.received.length >= n);
    });

    it("app_id+pushkey is unique across users unless appended; deletion; logout deletes the device's pushers", async () => {
      const carol = await loginUser(base, "carol");
      await ok(base, "POST", `${C}/pushers/set`, { token: bob.accessToken, body: pusherBody(gw.url) });
      await ok(base, "POST", `${C}/pushers/set`, {
        token: carol.accessToken,
        body: pusherBody(gw.url, { append: true }),
      });
      assert.equal((await ok(base, "GET", `${C}/pushers`, { token: bob.accessToken })).pushers.length, 1);
      await ok(base, "POST", `${C}/pushers/set`, { token: carol.accessToken, body: pusherBody(gw.url) });
      assert.equal((await ok(base, "GET", `${C}/pushers`, { token: bob.accessToken })).pushers.length, 0);
      assert.equal((await ok(base, "GET", `${C}/pushers`, { token: carol.accessToken })).pushers.length, 1);
      // kind null deletes.
      await ok(base, "POST", `${C}/pushers/set`, {
        token: carol.accessToken,
        body: { kind: null, app_id: "org.example.push", pushkey: "pk-bob" },
      });
      assert.equal((await ok(base, "GET", `${C}/pushers`, { token: carol.accessToken })).pushers.length, 0);
      // A second device of bob's sets a pusher and logs out: the pusher goes with it.
      const bob2 = await loginUser(base, "bob");
      await ok(base, "POST", `${C}/pushers/set`, {
        token: bob2.accessToken,
        body: pusherBody(gw.url, { pushkey: "pk-bob2" }),
      });
      await ok(base, "POST", `${C}/pushers/set`, { token: bob.accessToken, body: pusherBody(gw.url) });
      assert.equal((await ok(base, "GET", `${C}/pushers`, { token: bob.accessToken })).pushers.length, 2);
      await ok(base, "POST", `${C}/logout`, { token: bob2.accessToken, body: {} });
      assert.deepEqual(
        (await ok(base, "GET", `${C}/pushers`, { token: bob.accessToken })).pushers.map((p: any) => p.pushkey),
        ["pk-bob"],
      );
    });

    it("matrix-js-sdk's setPusher and getPushers", async () => {
      const client = sdkClient(base, alice);
      await client.setPusher({
        kind: "http",
        app_id: "org.example.sdk",
        pushkey: "sdk-key",
        app_display_name: "SDK",
        device_display_name: "SDK device",
        lang: "en",
        data: { url: gw.url, format: "event_id_only" },
        append: false,
      });
      const { pushers } = await client.getPushers();
      assert.equal(pushers.length, 1);
      assert.equal(pushers[0].pushkey, "sdk-key");
      assert.deepEqual(pushers[0].data, { url: gw.url, format: "event_id_only" });
      await client.setPusher({ ...pushers[0], kind: null as unknown as string, append: false });
      assert.deepEqual((await client.getPushers()).pushers, []);
      client.stopClient();
    });
  });
}
