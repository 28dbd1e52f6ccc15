/**
 * The deprecated pre-/sync reads on SQLite and PostgreSQL, over real HTTP, every answer checked against the spec:
 * GET /initialSync (rooms, archived rooms up to the leave), GET /events (the user's rooms from a token, paging past
 * a page's worth, the long-poll waking on a send, a left room ending at the leave), the peeking form with room_id
 * (world_readable rooms only, nothing from before they became world_readable), and GET /events/{eventId}. Leak
 * tests: a later joiner of a `joined` room, a stranger and a user who left never get what they could not see.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { EVENTS_PAGE } from "../../src/matrix/service/old-sync.ts";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { BACKENDS } from "./helpers/homeserver.ts";
import { enc, type Kit, type Res, startKit, V3 } from "./matrix-accounts-kit.ts";

type Who = { userId: string; token: string; deviceId: string };
const hv = (v: string) => ({ type: "m.room.history_visibility", state_key: "", content: { history_visibility: v } });

function expectError(r: Res, status: number, errcode: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.errcode, errcode, JSON.stringify(r.body));
}

for (const backend of BACKENDS) {
  describe(`old sync (/events, /initialSync, /events/{eventId}) on ${backend}`, () => {
    let k: Kit;
    let alice: Who;
    let bob: Who;
    let carol: Who;
    let dave: Who;
    let secretRoom: string;
    let chatRoom: string;
    let secretBefore: string;
    let secretAfter: string;
    let txn = 0;

    const get = async (who: Who, path: string) => {
      const r = await k.call("GET", path, undefined, who.token);
      assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.body)}`);
      return r.body;
    };
    const send = async (who: Who, roomId: string, body: string): Promise<string> => {
      const r = await k.call(
        "PUT",
        `${V3}/rooms/${enc(roomId)}/send/m.room.message/o${++txn}`,
        { msgtype: "m.text", body },
        who.token,
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.event_id;
    };
    const createRoom = async (who: Who, body: Record<string, unknown>) =>
      (await k.call("POST", `${V3}/createRoom`, body, who.token)).body.room_id as string;
    const join = async (who: Who, roomId: string) =>
      assert.equal((await k.call("POST", `${V3}/join/${enc(roomId)}`, {}, who.token)).status, 200);
    const initialSync = async (who: Who, q = "") => {
      const body = await get(who, `${V3}/initialSync${q}`);
      assertSpec("old_sync.yaml", "/initialSync", "GET", 200, body);
      return body;
    };
    const events = async (who: Who, q: string) => {
      const body = await get(who, `${V3}/events?${q}`);
      assertSpec(
        q.includes("room_id=") ? "peeking_events.yaml" : "old_sync.yaml",
        q.includes("room_id=") ? "/events " : "/events",
        "GET",
        200,
        body,
      );
      return body;
    };
    const bodies = (chunk: any[]) => chunk.filter((e) => e.type === "m.room.message").map((e) => e.content.body);

    before(async () => {
      k = await startKit(backend);
      [alice, bob, carol, dave] = await Promise.all(["alice", "bob", "carol", "dave"].map((u) => k.register(u)));
      // A `joined` room: dave joins after the first message and must never see it.
      secretRoom = await createRoom(alice, { preset: "private_chat", initial_state: [hv("joined")] });
      secretBefore = await send(alice, secretRoom, "secret before dave");
      await k.call("POST", `${V3}/rooms/${enc(secretRoom)}/invite`, { user_id: dave.userId }, alice.token);
      await join(dave, secretRoom);
      secretAfter = await send(alice, secretRoom, "after dave joined");
      chatRoom = await createRoom(alice, { preset: "public_chat", visibility: "public" });
      await join(bob, chatRoom);
      await send(alice, chatRoom, "hello bob");
    });
    after(async () => {
      await k?.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    test("initialSync: joined rooms with their visible latest messages and state; nothing of other rooms", async () => {
      const d = await initialSync(dave, "?limit=20");
      const room = d.rooms.find((r: any) => r.room_id === secretRoom);
      assert.equal(room.membership, "join");
      assert.deepEqual(bodies(room.messages.chunk), ["after dave joined"], "nothing from before dave joined");
      assert.ok(room.state.some((e: any) => e.type === "m.room.create"));
      assert.equal(room.visibility, "private");
      assert.ok(!d.rooms.some((r: any) => r.room_id === chatRoom), "dave is not in the chat room");
      assert.ok(d.account_data.some((e: any) => e.type === "m.push_rules"));
      assert.ok(d.presence.every((e: any) => e.type === "m.presence"));

      const c = await initialSync(carol);
      assert.deepEqual(c.rooms, [], "a stranger sees no rooms");
      const b = await initialSync(bob, "?limit=1");
      const chat = b.rooms.find((r: any) => r.room_id === chatRoom);
      assert.equal(chat.messages.chunk.length, 1);
      assert.equal(chat.visibility, "public");
      // messages.start continues into /messages.
      const older = await get(bob, `${V3}/rooms/${enc(chatRoom)}/messages?dir=b&from=${enc(chat.messages.start)}`);
      assert.ok(older.chunk.length > 0);
      assert.ok(!older.chunk.some((e: any) => e.event_id === chat.messages.chunk[0].event_id));
    });

    test("events/{eventId}: only events the user may see; 404 otherwise, 400 for a malformed ID", async () => {
      const ok = await get(dave, `${V3}/events/${enc(secretAfter)}`);
      assertSpec("old_sync.yaml", "/events/{eventId}", "GET", 200, ok);
      assert.equal(ok.event_id, secretAfter);
      assert.equal(ok.content.body, "after dave joined");
      expectError(await k.call("GET", `${V3}/events/${enc(secretBefore)}`, undefined, dave.token), 404, "M_NOT_FOUND");
      expectError(await k.call("GET", `${V3}/events/${enc(secretAfter)}`, undefined, carol.token), 404, "M_NOT_FOUND");
      expectError(await k.call("GET", `${V3}/events/${enc("$nope")}`, undefined, alice.token), 404, "M_NOT_FOUND");
      expectError(await k.call("GET", `${V3}/events/nope`, undefined, alice.token), 400, "M_INVALID_PARAM");
      assert.equal((await get(alice, `${V3}/events/${enc(secretBefore)}`)).event_id, secretBefore);
    });

    test("events: new events of the user's own rooms from a token, paged, none of others' rooms", async () => {
      const start = (await initialSync(bob)).end;
      const empty = await events(bob, `from=${enc(start)}&timeout=0`);
      assert.deepEqual(empty.chunk, []);
      const second = await createRoom(alice, { preset: "public_chat" });
      await join(bob, second);
      await send(alice, secretRoom, "not for bob");
      // Two rooms, the second with fewer events: the merge must cut where the fuller room's page ends.
      const n = 2 * EVENTS_PAGE + 20;
      for (let i = 0; i < n; i++) await send(alice, i % 4 === 0 ? second : chatRoom, `m${i}`);
      const got: string[] = [];
      let from = start;
      for (let pages = 0; pages < 10; pages++) {
        const page = await events(bob, `from=${enc(from)}&timeout=0`);
        assert.equal(page.start, from);
        if (page.chunk.length === 0) break;
        assert.ok(page.chunk.length <= EVENTS_PAGE);
        const foreign = page.chunk.filter((e: any) => e.room_id !== chatRoom && e.room_id !== second);
        assert.deepEqual(foreign, [], "only rooms bob is in");
        got.push(...bodies(page.chunk));
        from = page.end;
      }
      assert.deepEqual(
        got,
        Array.from({ length: n }, (_, i) => `m${i}`),
        "every event once, in order",
      );
    });

    test("events: a long-poll wakes on a send in one of the user's rooms", async () => {
      const from = (await initialSync(bob)).end;
      const poll = events(bob, `from=${enc(from)}&timeout=20000`);
      // Sent after the poll started (or before it looked: either way it is after `from`).
      await send(alice, chatRoom, "wake up");
      const page = await poll;
      assert.deepEqual(bodies(page.chunk), ["wake up"]);
    });

    test("events and initialSync: a room ends at the user's leave (archived keeps it up to the leave)", async () => {
      const room = await createRoom(alice, { preset: "public_chat", initial_state: [hv("shared")] });
      await join(bob, room);
      await send(alice, room, "while bob is here");
      const from = (await initialSync(bob)).end;
      assert.equal((await k.call("POST", `${V3}/rooms/${enc(room)}/leave`, {}, bob.token)).status, 200);
      await send(alice, room, "after bob left");
      const page = await events(bob, `from=${enc(from)}&timeout=0`);
      const mine = page.chunk.filter((e: any) => e.room_id === room);
      assert.deepEqual(
        mine.map((e: any) => [e.type, e.content.membership]),
        [["m.room.member", "leave"]],
        "bob's own leave, nothing after it",
      );
      const plain = await initialSync(bob);
      assert.ok(!plain.rooms.some((r: any) => r.room_id === room), "left rooms only with archived=true");
      const archived = await initialSync(bob, "?archived=true&limit=50");
      const r = archived.rooms.find((x: any) => x.room_id === room);
      assert.equal(r.membership, "leave");
      assert.ok(bodies(r.messages.chunk).includes("while bob is here"));
      assert.ok(!bodies(r.messages.chunk).includes("after bob left"), "nothing after the leave");
      assert.ok(!r.state.some((e: any) => e.content?.body === "after bob left"));
    });

    test("peeking: world_readable rooms only, and only from when they became world_readable", async () => {
      const room = await createRoom(alice, { preset: "public_chat", initial_state: [hv("shared")] });
      await send(alice, room, "before world readable");
      const hvr = await k.call(
        "PUT",
        `${V3}/rooms/${enc(room)}/state/m.room.history_visibility`,
        hv("world_readable").content,
        alice.token,
      );
      assert.equal(hvr.status, 200);
      await send(alice, room, "world can read this");
      const page = await events(carol, `room_id=${enc(room)}&from=${enc("s0_0")}&timeout=0`);
      assert.deepEqual(bodies(page.chunk), ["world can read this"]);
      assert.ok(page.chunk.every((e: any) => e.room_id === room));
      // Continuing from `end` waits for what comes next.
      const next = events(carol, `room_id=${enc(room)}&from=${enc(page.end)}&timeout=20000`);
      await send(alice, room, "next one");
      assert.deepEqual(bodies((await next).chunk), ["next one"]);
      // Not world-readable, unknown, malformed.
      expectError(
        await k.call("GET", `${V3}/events?room_id=${enc(secretRoom)}&timeout=0`, undefined, carol.token),
        403,
        "M_FORBIDDEN",
      );
      expectError(
        await k.call("GET", `${V3}/events?room_id=${enc("!nope:localhost")}&timeout=0`, undefined, carol.token),
        404,
        "M_NOT_FOUND",
      );
      expectError(
        await k.call("GET", `${V3}/events?room_id=nope&timeout=0`, undefined, carol.token),
        400,
        "M_INVALID_PARAM",
      );
    });

    test("bad input: malformed tokens, timeouts and flags are 400", async () => {
      for (const path of [
        `${V3}/events?from=garbage&timeout=0`,
        `${V3}/events?timeout=-1`,
        `${V3}/events?timeout=soon`,
        `${V3}/initialSync?archived=maybe`,
        `${V3}/initialSync?limit=-3`,
        `${V3}/initialSync?limit=ten`,
      ]) {
        const r = await k.call("GET", path, undefined, alice.token);
        expectError(r, 400, "M_INVALID_PARAM");
      }
      expectError(await k.call("GET", `${V3}/initialSync`), 401, "M_MISSING_TOKEN");
      expectError(await k.call("GET", `${V3}/events?timeout=0`), 401, "M_MISSING_TOKEN");
    });
  });
}
