/** /relations and /threads in-process: pagination, filters, edits bundled where events are read, visibility. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { assertSpec } from "../../test/spec-schema.ts";
import { enc, startTestServer, type TestServer, type TestUser, V3 } from "./room-testkit.ts";

let srv: TestServer;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
let roomId: string;
let root: string;
const replies: string[] = [];
let n = 0;
const room = () => `${V3}/rooms/${enc(roomId)}`;
const v1 = () => `/_matrix/client/v1/rooms/${enc(roomId)}`;
const ids = (chunk: { event_id: string }[]) => chunk.map((e) => e.event_id);

async function send(u: TestUser, content: Record<string, unknown>, type = "m.room.message"): Promise<string> {
  const r = await u.call("PUT", `${room()}/send/${type}/u${n++}`, content);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.event_id;
}

before(async () => {
  srv = await startTestServer();
  alice = await srv.user("alice");
  bob = await srv.user("bob");
  carol = await srv.user("carol");
  roomId = (
    await alice.call("POST", `${V3}/createRoom`, {
      preset: "public_chat",
      initial_state: [{ type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } }],
    })
  ).body.room_id;
  await bob.call("POST", `${room()}/join`, {});
  root = await send(alice, { msgtype: "m.text", body: "root" });
  for (let i = 0; i < 7; i++)
    replies.push(
      await send(i % 2 ? bob : alice, {
        msgtype: "m.text",
        body: `reply ${i}`,
        "m.relates_to": { rel_type: "m.thread", event_id: root },
      }),
    );
});
after(() => srv.close());

test("/relations pages backwards and forwards through a thread; unknown or invalid parents", async () => {
  const back: string[] = [];
  let from = "";
  for (let i = 0; i < 10; i++) {
    const r = await bob.call("GET", `${v1()}/relations/${enc(root)}/m.thread?limit=3${from && `&from=${enc(from)}`}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertSpec("relations.yaml", "/rooms/{roomId}/relations/{eventId}/{relType}", "GET", 200, r.body);
    back.push(...ids(r.body.chunk));
    if (!r.body.next_batch) break;
    from = r.body.next_batch;
  }
  assert.deepEqual(back, [...replies].reverse());
  const fwd = await bob.call("GET", `${v1()}/relations/${enc(root)}?dir=f&limit=100`);
  assert.deepEqual(ids(fwd.body.chunk), replies);
  assert.equal(fwd.body.next_batch, undefined);
  const typed = await bob.call("GET", `${v1()}/relations/${enc(root)}/m.thread/m.reaction`);
  assert.deepEqual(typed.body.chunk, []);
  assert.equal((await bob.call("GET", `${v1()}/relations/${enc("$nope")}`)).status, 404);
  assert.equal((await bob.call("GET", `${v1()}/relations/${enc(root)}?dir=x`)).status, 400);
  assert.equal((await bob.call("GET", `${v1()}/relations/${enc(root)}?recurse=yes`)).status, 400);
});

test("an edit is bundled on /messages, /context, /event and /sync; a later edit wins; a redacted edit drops out", async () => {
  const edit = (body: string) =>
    send(alice, {
      msgtype: "m.text",
      body: `* ${body}`,
      "m.new_content": { msgtype: "m.text", body },
      "m.relates_to": { rel_type: "m.replace", event_id: root },
    });
  const e1 = await edit("first edit");
  const e2 = await edit("second edit");
  const replaceOf = (ev: { unsigned?: Record<string, any> }) => ev.unsigned?.["m.relations"]?.["m.replace"]?.event_id;
  const ev = await bob.call("GET", `${room()}/event/${enc(root)}`);
  assert.equal(replaceOf(ev.body), e2);
  assert.equal(ev.body.unsigned["m.relations"]["m.replace"].content["m.new_content"].body, "second edit");
  assert.equal(ev.body.unsigned["m.relations"]["m.thread"].count, 7);
  const msgs = await bob.call("GET", `${room()}/messages?dir=b&limit=50`);
  assert.equal(replaceOf(msgs.body.chunk.find((e: { event_id: string }) => e.event_id === root)), e2);
  const ctx = await bob.call("GET", `${room()}/context/${enc(root)}`);
  assert.equal(replaceOf(ctx.body.event), e2);
  const sync = await bob.call("GET", `${V3}/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 50 } } }))}`);
  const inSync = sync.body.rooms.join[roomId].timeline.events.find((e: { event_id: string }) => e.event_id === root);
  assert.equal(replaceOf(inSync), e2);
  await alice.call("PUT", `${room()}/redact/${enc(e2)}/r${n++}`, {});
  assert.equal(replaceOf((await bob.call("GET", `${room()}/event/${enc(root)}`)).body), e1);
});

test("history visibility: a later member sees neither the earlier parent's relations nor its thread", async () => {
  await carol.call("POST", `${room()}/join`, {});
  await send(bob, { msgtype: "m.text", body: "late", "m.relates_to": { rel_type: "m.thread", event_id: root } });
  assert.equal((await carol.call("GET", `${v1()}/relations/${enc(root)}`)).status, 404);
  const t = await carol.call("GET", `${v1()}/threads`);
  assert.equal(t.status, 200);
  assertSpec("threads_list.yaml", "/rooms/{roomId}/threads", "GET", 200, t.body);
  assert.deepEqual(t.body.chunk, []);
  const forBob = await bob.call("GET", `${v1()}/threads`);
  assertSpec("threads_list.yaml", "/rooms/{roomId}/threads", "GET", 200, forBob.body);
  assert.deepEqual(ids(forBob.body.chunk), [root]);
  assert.equal(forBob.body.chunk[0].unsigned["m.relations"]["m.thread"].count, 8);
});

test("/sync: unread_thread_notifications per thread when the filter asks, cleared by a threaded receipt", async () => {
  const filter = (on: boolean) =>
    enc(JSON.stringify({ room: { timeline: { limit: 1, unread_thread_notifications: on } } }));
  const counts = async (on = true) =>
    (await bob.call("GET", `${V3}/sync?filter=${filter(on)}`)).body.rooms.join[roomId].unread_thread_notifications;
  const mine = replies.filter((_, i) => i % 2 === 0); // alice's: unread for bob
  assert.deepEqual(await counts(), { [root]: { notification_count: mine.length, highlight_count: 0 } });
  assert.equal(await counts(false), undefined);
  const r = await bob.call("POST", `${room()}/receipt/m.read/${enc(replies[6])}`, { thread_id: root });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(await counts(), undefined);
  const wrong = await bob.call("POST", `${room()}/receipt/m.read/${enc(replies[6])}`, { thread_id: "main" });
  assert.equal(wrong.status, 400);
});
