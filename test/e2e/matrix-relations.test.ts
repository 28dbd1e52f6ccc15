/**
 * Relationships end to end (spec "Relationships", "Threading", "Event replacements", "Annotations"), on SQLite
 * and PostgreSQL: a thread with replies from two users seen by matrix-js-sdk with thread support (the /threads list,
 * the root's bundled summary, receipts in the thread), an edit seen as edited by a client syncing from scratch,
 * reactions through /relations, a duplicate reaction refused, and history visibility holding for /relations and
 * /threads (a user who joined later sees nothing from before).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ClientEvent, type MatrixClient, NotificationCountType, SyncState } from "matrix-js-sdk";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { api, enc, ok, registerUser, type Session, sdkClient, waitFor } from "./helpers/client.ts";
import { BACKENDS, ChildHomeserver } from "./helpers/homeserver.ts";

/** Start the SDK with thread support and resolve once its first sync is processed. */
async function startThreaded(c: MatrixClient): Promise<void> {
  const ready = new Promise<void>((resolve, reject) => {
    const on = (state: SyncState) => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) {
        c.off(ClientEvent.Sync, on);
        resolve();
      } else if (state === SyncState.Error) {
        c.off(ClientEvent.Sync, on);
        reject(new Error("initial sync failed"));
      }
    };
    c.on(ClientEvent.Sync, on);
  });
  await c.startClient({ initialSyncLimit: 50, threadSupport: true });
  await ready;
}

const thread = (root: string) => ({ "m.relates_to": { rel_type: "m.thread", event_id: root } });

for (const backend of BACKENDS) {
  describe(`relations and threads end to end (${backend})`, () => {
    let hs: ChildHomeserver;
    let alice: Session;
    let bob: Session;
    let carol: Session;
    const clients: MatrixClient[] = [];
    let roomId = "";
    let root = "";
    let r1 = "";
    let r2 = "";
    let edit = "";
    let txn = 0;

    const send = async (s: Session, content: Record<string, unknown>, type = "m.room.message") =>
      (
        await ok(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/${type}/t${txn++}`, {
          token: s.accessToken,
          body: content,
        })
      ).event_id as string;
    const get = (s: Session, path: string) => api(hs.url, "GET", path, { token: s.accessToken });

    before(async () => {
      hs = await ChildHomeserver.start({ backend });
      const u = randomBytes(3).toString("hex");
      alice = await registerUser(hs.url, `alice${u}`);
      bob = await registerUser(hs.url, `bob${u}`);
      carol = await registerUser(hs.url, `carol${u}`);
      const created = await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: {
          preset: "public_chat",
          initial_state: [
            { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } },
          ],
        },
      });
      roomId = created.room_id;
      await ok(hs.url, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.accessToken, body: {} });
    });
    after(async () => {
      for (const c of clients) c.stopClient();
      const errors = hs?.errorLines() ?? [];
      await hs?.dispose();
      assert.deepEqual(errors, [], "the homeserver logged internal errors");
    });

    it("a thread with replies from two users: /threads and the root's bundled summary", async () => {
      root = await send(alice, { msgtype: "m.text", body: "root" });
      r1 = await send(alice, { msgtype: "m.text", body: "reply one", ...thread(root) });
      r2 = await send(bob, { msgtype: "m.text", body: "reply two", ...thread(root) });
      const other = await send(bob, { msgtype: "m.text", body: "another root" });

      const list = await get(bob, `/_matrix/client/v1/rooms/${enc(roomId)}/threads`);
      assert.equal(list.status, 200, list.text);
      assertSpec("threads_list.yaml", "/rooms/{roomId}/threads", "GET", 200, list.json);
      assert.deepEqual(
        list.json.chunk.map((e: { event_id: string }) => e.event_id),
        [root],
      );
      const summary = list.json.chunk[0].unsigned["m.relations"]["m.thread"];
      assert.equal(summary.count, 2);
      assert.equal(summary.latest_event.event_id, r2);
      assert.equal(summary.latest_event.content.body, "reply two");
      assert.equal(summary.current_user_participated, true);

      // A thread on the other root, newer: listed first; `participated` for alice leaves it out.
      const o1 = await send(bob, { msgtype: "m.text", body: "other reply", ...thread(other) });
      const both = await get(alice, `/_matrix/client/v1/rooms/${enc(roomId)}/threads?limit=1`);
      assert.deepEqual(
        both.json.chunk.map((e: { event_id: string }) => e.event_id),
        [other],
      );
      assert.equal(both.json.chunk[0].unsigned["m.relations"]["m.thread"].current_user_participated, false);
      assert.equal(both.json.chunk[0].unsigned["m.relations"]["m.thread"].latest_event.event_id, o1);
      assert.ok(both.json.next_batch, "a full page has a next_batch");
      const page2 = await get(
        alice,
        `/_matrix/client/v1/rooms/${enc(roomId)}/threads?limit=1&from=${enc(both.json.next_batch)}`,
      );
      assert.deepEqual(
        page2.json.chunk.map((e: { event_id: string }) => e.event_id),
        [root],
      );
      const mine = await get(alice, `/_matrix/client/v1/rooms/${enc(roomId)}/threads?include=participated`);
      assert.deepEqual(
        mine.json.chunk.map((e: { event_id: string }) => e.event_id),
        [root],
      );
      const bad = await get(alice, `/_matrix/client/v1/rooms/${enc(roomId)}/threads?include=some`);
      assert.equal(bad.status, 400);

      // The root read through /event and /context carries the same summary.
      const ev = await ok(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(root)}`, {
        token: bob.accessToken,
      });
      assert.equal(ev.unsigned["m.relations"]["m.thread"].count, 2);
    });

    it("matrix-js-sdk with thread support sees the thread, its replies and a threaded receipt", async () => {
      const cb = sdkClient(hs.url, bob);
      clients.push(cb);
      await startThreaded(cb);
      const room = await waitFor("bob's room", () => cb.getRoom(roomId));
      const t = await waitFor("the thread in bob's client", () => room.getThread(root));
      await waitFor("the thread's two replies", () => t.length === 2 && t.replyToEvent?.getId() === r2);
      assert.ok(
        room.getThreads().some((x) => x.id === root),
        "the thread is listed",
      );
      // Per-thread unread counts: a new thread of alice's is unread for bob until his receipt in it. (The SDK itself
      // zeroes a thread whose last reply is the user's own, as in `root`, so this one has only alice's.)
      const root3 = await send(alice, { msgtype: "m.text", body: "third root" });
      const x1 = await send(alice, { msgtype: "m.text", body: "x1", ...thread(root3) });
      const raw = await ok(
        hs.url,
        "GET",
        `/_matrix/client/v3/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 1, unread_thread_notifications: true } } }))}`,
        { token: bob.accessToken },
      );
      assert.deepEqual(raw.rooms.join[roomId].unread_thread_notifications, {
        [root]: { notification_count: 1, highlight_count: 0 },
        [root3]: { notification_count: 1, highlight_count: 0 },
      });
      const plain = await ok(
        hs.url,
        "GET",
        `/_matrix/client/v3/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 1 } } }))}`,
        { token: bob.accessToken },
      );
      assert.equal(plain.rooms.join[roomId].unread_thread_notifications, undefined, "only when the filter asks");
      // With thread counts asked for, the room's own counts are the main timeline's: the two unread replies leave it.
      assert.ok(
        raw.rooms.join[roomId].unread_notifications.notification_count <=
          plain.rooms.join[roomId].unread_notifications.notification_count - 2,
        JSON.stringify([raw.rooms.join[roomId].unread_notifications, plain.rooms.join[roomId].unread_notifications]),
      );
      await waitFor(
        "one unread in bob's new thread",
        () => room.getThreadUnreadNotificationCount(root3, NotificationCountType.Total) === 1,
      );
      const bobRead = await api(hs.url, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(x1)}`, {
        token: bob.accessToken,
        body: { thread_id: root3 },
      });
      assert.equal(bobRead.status, 200, bobRead.text);
      await waitFor(
        "bob's new thread read",
        () => room.getThreadUnreadNotificationCount(root3, NotificationCountType.Total) === 0,
      );

      // A receipt naming the wrong thread is refused (receipts.yaml 400).
      const wrong = await api(hs.url, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(r2)}`, {
        token: bob.accessToken,
        body: { thread_id: "main" },
      });
      assert.equal(wrong.status, 400);
      assert.equal(wrong.json.errcode, "M_INVALID_PARAM");

      // Alice reads her thread up to r2: a receipt with thread_id = the root, which bob's SDK files under the thread.
      const rr = await api(hs.url, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(r2)}`, {
        token: alice.accessToken,
        body: { thread_id: root },
      });
      assert.equal(rr.status, 200, rr.text);
      await waitFor("alice's threaded receipt at bob", () => t.getEventReadUpTo(alice.userId) === r2);
    });

    it("reactions aggregate through /relations; the same reaction twice is refused; a redacted one is gone", async () => {
      const react = (s: Session, key: string) =>
        api(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.reaction/t${txn++}`, {
          token: s.accessToken,
          body: { "m.relates_to": { rel_type: "m.annotation", event_id: root, key } },
        });
      const a = await react(alice, "👍");
      const b = await react(bob, "👍");
      const c = await react(bob, "🎉");
      for (const r of [a, b, c]) assert.equal(r.status, 200, r.text);
      const dup = await react(bob, "👍");
      assert.equal(dup.status, 400);
      assert.equal(dup.json.errcode, "M_DUPLICATE_ANNOTATION");

      const path = `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(root)}/m.annotation/m.reaction`;
      const rel = await get(bob, path);
      assert.equal(rel.status, 200, rel.text);
      assertSpec("relations.yaml", "/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", "GET", 200, rel.json);
      const keys = rel.json.chunk.map(
        (e: { sender: string; content: { "m.relates_to": { key: string } } }) =>
          `${e.sender === bob.userId ? "bob" : "alice"}:${e.content["m.relates_to"].key}`,
      );
      assert.deepEqual(keys, ["bob:🎉", "bob:👍", "alice:👍"], "newest first");

      // Everything about the root, paginated forwards two by two.
      const all: string[] = [];
      let from = "";
      for (let i = 0; i < 10; i++) {
        const q = `?dir=f&limit=2${from ? `&from=${enc(from)}` : ""}`;
        const page = await get(bob, `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(root)}${q}`);
        assertSpec("relations.yaml", "/rooms/{roomId}/relations/{eventId}", "GET", 200, page.json);
        all.push(...page.json.chunk.map((e: { event_id: string }) => e.event_id));
        if (!page.json.next_batch) break;
        from = page.json.next_batch;
      }
      assert.deepEqual(all, [r1, r2, a.json.event_id, b.json.event_id, c.json.event_id]);
      const threadOnly = await get(bob, `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(root)}/m.thread`);
      assertSpec("relations.yaml", "/rooms/{roomId}/relations/{eventId}/{relType}", "GET", 200, threadOnly.json);
      assert.deepEqual(
        threadOnly.json.chunk.map((e: { event_id: string }) => e.event_id),
        [r2, r1],
      );

      // Redacting a reaction takes it out, and the same reaction may be sent again.
      await ok(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/redact/${enc(b.json.event_id)}/x${txn++}`, {
        token: bob.accessToken,
        body: {},
      });
      const after = await get(bob, path);
      assert.equal(after.json.chunk.length, 2);
      assert.equal((await react(bob, "👍")).status, 200);
    });

    it("recurse follows relations of relations", async () => {
      const onReply = await send(
        alice,
        { "m.relates_to": { rel_type: "m.reference", event_id: r1 } },
        "m.room.message",
      );
      const flat = await get(bob, `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(root)}/m.reference`);
      assert.deepEqual(flat.json.chunk, []);
      const deep = await get(
        bob,
        `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(root)}/m.reference?recurse=true`,
      );
      assertSpec("relations.yaml", "/rooms/{roomId}/relations/{eventId}/{relType}", "GET", 200, deep.json);
      assert.deepEqual(
        deep.json.chunk.map((e: { event_id: string }) => e.event_id),
        [onReply],
      );
      assert.equal(deep.json.recursion_depth, 3);
      // r1 now has a reference: bundled in its unsigned.
      const ev = await ok(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(r1)}`, {
        token: bob.accessToken,
      });
      assert.deepEqual(ev.unsigned["m.relations"]["m.reference"], { chunk: [{ event_id: onReply }] });
    });

    it("an edit: bundled as m.replace, so a client syncing from scratch shows the new text", async () => {
      // Bob may not edit alice's message: his "edit" is not a valid replacement and is not bundled.
      await send(bob, {
        msgtype: "m.text",
        body: "* hijack",
        "m.new_content": { msgtype: "m.text", body: "hijack" },
        "m.relates_to": { rel_type: "m.replace", event_id: root },
      });
      edit = await send(alice, {
        msgtype: "m.text",
        body: "* root (edited)",
        "m.new_content": { msgtype: "m.text", body: "root (edited)" },
        "m.relates_to": { rel_type: "m.replace", event_id: root },
      });
      const ev = await ok(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(root)}`, {
        token: bob.accessToken,
      });
      assert.equal(ev.unsigned["m.relations"]["m.replace"].event_id, edit);
      assert.equal(ev.content.body, "root", "the server leaves the original content as it was");
      const msgs = await ok(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`, {
        token: bob.accessToken,
      });
      const inPage = msgs.chunk.find((e: { event_id: string }) => e.event_id === root);
      assert.equal(inPage.unsigned["m.relations"]["m.replace"].event_id, edit);

      // A fresh login of bob, syncing from scratch.
      const fresh = await ok(hs.url, "POST", "/_matrix/client/v3/login", {
        body: {
          type: "m.login.password",
          identifier: { type: "m.id.user", user: bob.userId },
          password: "correct horse battery",
        },
      });
      const c2 = sdkClient(hs.url, {
        userId: fresh.user_id,
        accessToken: fresh.access_token,
        deviceId: fresh.device_id,
      });
      clients.push(c2);
      await startThreaded(c2);
      const room = await waitFor("the room after a fresh login", () => c2.getRoom(roomId));
      const rootEv = await waitFor("the root in the fresh client", () => room.findEventById(root));
      assert.equal(rootEv.replacingEventId(), edit);
      assert.equal(rootEv.getContent().body, "root (edited)");
      const t = await waitFor("the thread in the fresh client", () => room.getThread(root));
      await waitFor("its count from the bundled summary", () => t.length === 2);
    });

    it("history visibility: a user who joined later sees no earlier relations or threads", async () => {
      await ok(hs.url, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, { token: carol.accessToken, body: {} });
      // A reply after carol joined, in a thread whose root she cannot see.
      await send(bob, { msgtype: "m.text", body: "late reply", ...thread(root) });
      const rel = await get(carol, `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(root)}`);
      assert.equal(rel.status, 404, "the parent is hidden: no relations, no existence");
      const threads = await get(carol, `/_matrix/client/v1/rooms/${enc(roomId)}/threads`);
      assert.equal(threads.status, 200);
      assert.deepEqual(threads.json.chunk, [], "no thread whose root is before her join");

      // A thread she sees whole: started after her join.
      const visibleRoot = await send(alice, { msgtype: "m.text", body: "after carol joined" });
      const reply = await send(carol, { msgtype: "m.text", body: "carol's reply", ...thread(visibleRoot) });
      const mine = await get(carol, `/_matrix/client/v1/rooms/${enc(roomId)}/threads?include=participated`);
      assert.deepEqual(
        mine.json.chunk.map((e: { event_id: string }) => e.event_id),
        [visibleRoot],
      );
      const rel2 = await get(carol, `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(visibleRoot)}`);
      assert.deepEqual(
        rel2.json.chunk.map((e: { event_id: string }) => e.event_id),
        [reply],
      );
      // After she leaves, later replies stay hidden: from /relations and from the bundled thread summary.
      await ok(hs.url, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/leave`, { token: carol.accessToken, body: {} });
      await send(bob, { msgtype: "m.text", body: "after carol left", ...thread(visibleRoot) });
      const rel3 = await get(carol, `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(visibleRoot)}`);
      assert.deepEqual(
        rel3.json.chunk.map((e: { event_id: string }) => e.event_id),
        [reply],
      );
      const left = await get(carol, `/_matrix/client/v1/rooms/${enc(roomId)}/threads`);
      assert.deepEqual(
        left.json.chunk.map((e: { event_id: string }) => e.event_id),
        [visibleRoot],
      );
      const summary = left.json.chunk[0].unsigned["m.relations"]["m.thread"];
      assert.equal(summary.count, 1);
      assert.equal(summary.latest_event.event_id, reply);
      assert.equal(summary.current_user_participated, true);
      const bobs = await get(bob, `/_matrix/client/v1/rooms/${enc(roomId)}/threads?limit=1`);
      assert.equal(bobs.json.chunk[0].unsigned["m.relations"]["m.thread"].count, 2);

      // Someone never in the room reads nothing.
      const dave = await registerUser(hs.url, `dave${randomBytes(3).toString("hex")}`);
      const denied = await get(dave, `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(visibleRoot)}`);
      assert.equal(denied.status, 403);
    });
  });
}
