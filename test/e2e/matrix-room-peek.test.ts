/**
 * timestamp_to_event and room initialSync end to end (spec room_event_by_timestamp.yaml, room_initial_sync.yaml),
 * on SQLite and PostgreSQL, held to history visibility: in a `joined` room a later joiner finds no event from before
 * their join by timestamp and gets none in initialSync; a member who left sees the messages and state up to their
 * leave; an outsider is refused, a peeker of a world-readable room is served; bad input is a clear 4xx; the
 * matrix-js-sdk calls read the same.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Direction } from "matrix-js-sdk";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { api, enc, ok, registerUser, type Session, sdkClient } from "./helpers/client.ts";
import { BACKENDS, ChildHomeserver } from "./helpers/homeserver.ts";

/** Wait until the clock has moved past `t` so the next event's origin_server_ts is later. */
async function tick(): Promise<number> {
  const t = Date.now();
  while (Date.now() <= t + 1) await new Promise((r) => setTimeout(r, 2));
  return Date.now();
}

for (const backend of BACKENDS) {
  describe(`timestamp_to_event and initialSync (${backend})`, () => {
    let hs: ChildHomeserver;
    let alice: Session;
    let bob: Session;
    let dave: Session;
    let roomId = "";
    const ev: Record<string, string> = {};
    let tMid = 0;
    let tEnd = 0;
    let txn = 0;

    const send = async (body: string) =>
      (
        await ok(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${txn++}`, {
          token: alice.accessToken,
          body: { msgtype: "m.text", body },
        })
      ).event_id as string;
    const near = (s: Session, query: string, room = roomId) =>
      api(hs.url, "GET", `/_matrix/client/v1/rooms/${enc(room)}/timestamp_to_event${query}`, { token: s.accessToken });
    const initial = (s: Session, room = roomId) =>
      api(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(room)}/initialSync`, { token: s.accessToken });
    const chunkIds = (body: { messages: { chunk: { event_id: string }[] } }) =>
      body.messages.chunk.map((e) => e.event_id);

    before(async () => {
      hs = await ChildHomeserver.start({ backend });
      const u = randomBytes(3).toString("hex");
      alice = await registerUser(hs.url, `alice${u}`);
      bob = await registerUser(hs.url, `bob${u}`);
      dave = await registerUser(hs.url, `dave${u}`);
      roomId = (
        await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", {
          token: alice.accessToken,
          body: {
            preset: "public_chat",
            name: "First name",
            initial_state: [
              { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } },
            ],
          },
        })
      ).room_id;
      // The room's setup up to its history_visibility event is shared history (the setting before that event was
      // the default, `shared`); the name set after it is hidden from later joiners like m1 and m2.
      const hv = `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.history_visibility/?format=event`;
      ev.setup = (await ok(hs.url, "GET", hv, { token: alice.accessToken })).event_id;
      await tick();
      ev.m1 = await send("one");
      tMid = await tick();
      ev.m2 = await send("two");
      await tick();
      await ok(hs.url, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.accessToken, body: {} });
      const member = `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}?format=event`;
      ev.join = (await ok(hs.url, "GET", member, { token: bob.accessToken })).event_id;
      await tick();
      ev.m3 = await send("three");
      tEnd = await tick();
    });
    after(async () => {
      const errors = hs?.errorLines() ?? [];
      await hs?.dispose();
      assert.deepEqual(errors, [], "the homeserver logged internal errors");
    });

    it("timestamp_to_event: closest event either way, never one the reader may not see", async () => {
      const found = async (s: Session, ts: number, dir: string) => {
        const r = await near(s, `?ts=${ts}&dir=${dir}`);
        if (r.status === 200)
          assertSpec("room_event_by_timestamp.yaml", "/rooms/{roomId}/timestamp_to_event", "GET", 200, r.json);
        return r.status === 200 ? r.json.event_id : r.status;
      };
      assert.equal(await found(alice, tMid, "f"), ev.m2);
      assert.equal(await found(alice, tMid, "b"), ev.m1);
      assert.equal(await found(alice, tEnd, "b"), ev.m3);
      assert.equal(await found(alice, tEnd, "f"), 404);
      const none = await near(alice, `?ts=${tEnd}&dir=f`);
      assert.equal(none.json.errcode, "M_NOT_FOUND");
      assertSpec("room_event_by_timestamp.yaml", "/rooms/{roomId}/timestamp_to_event", "GET", 404, none.json);

      // bob joined after m2 in a `joined` room: m1 and m2 do not exist for him.
      assert.equal(await found(bob, tMid, "f"), ev.join, "the first event bob may see after tMid is his join");
      assert.equal(await found(bob, tMid, "b"), ev.setup, "m1 is hidden from bob: the room's setup is found");
      assert.equal(await found(bob, tMid - 1, "f"), ev.join);
      assert.equal(await found(dave, tMid, "f"), 403, "an outsider may not search the room");

      const cb = sdkClient(hs.url, bob);
      const viaSdk = await cb.timestampToEvent(roomId, tEnd, Direction.Backward);
      assert.equal(viaSdk.event_id, ev.m3);

      for (const q of ["", "?dir=f", "?ts=1", "?ts=abc&dir=f", "?ts=-5&dir=f", "?ts=1&dir=x", "?ts=1.5&dir=b"]) {
        const r = await near(alice, q);
        assert.equal(r.status, 400, `${q}: ${r.text}`);
        assert.ok(["M_MISSING_PARAM", "M_INVALID_PARAM"].includes(r.json.errcode), q);
      }
      assert.equal((await near(alice, "?ts=1&dir=f", "not-a-room")).status, 400);
      assert.equal((await near(alice, "?ts=1&dir=f", "!nope:localhost")).status, 404);
    });

    it("initialSync: what a member, a later joiner, a leaver, an outsider and a peeker get", async () => {
      await ok(hs.url, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(ev.m3)}`, {
        token: alice.accessToken,
        body: {},
      });
      await ok(hs.url, "PUT", `/_matrix/client/v3/user/${enc(alice.userId)}/rooms/${enc(roomId)}/tags/u.x`, {
        token: alice.accessToken,
        body: {},
      });
      const a = await initial(alice);
      assert.equal(a.status, 200, a.text);
      assertSpec("room_initial_sync.yaml", "/rooms/{roomId}/initialSync", "GET", 200, a.json);
      assert.equal(a.json.membership, "join");
      assert.equal(a.json.visibility, "private");
      assert.deepEqual(chunkIds(a.json).slice(-4), [ev.m1, ev.m2, ev.join, ev.m3]);
      assert.ok(a.json.state.some((e: { type: string }) => e.type === "m.room.create"));
      assert.ok(a.json.account_data.some((e: { type: string }) => e.type === "m.tag"));
      assert.equal(a.json.receipts[0]?.type, "m.receipt");
      assert.ok(a.json.receipts[0].content[ev.m3]["m.read"][alice.userId]);
      assert.ok(Array.isArray(a.json.presence));

      // The later joiner: nothing from before the join.
      const b = await initial(bob);
      assert.equal(b.status, 200, b.text);
      assert.deepEqual(chunkIds(b.json).slice(-3), [ev.setup, ev.join, ev.m3]);

      // bob leaves; what follows (a message, a new name) stays hidden from him.
      await ok(hs.url, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/leave`, { token: bob.accessToken, body: {} });
      const m4 = await send("four");
      await ok(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.name/`, {
        token: alice.accessToken,
        body: { name: "Second name" },
      });
      const left = await initial(bob);
      assert.equal(left.status, 200, left.text);
      assertSpec("room_initial_sync.yaml", "/rooms/{roomId}/initialSync", "GET", 200, left.json);
      assert.equal(left.json.membership, "leave");
      assert.ok(!chunkIds(left.json).includes(m4), "a message after the leave is hidden");
      assert.ok(!chunkIds(left.json).includes(ev.m1), "a message from before the join stays hidden");
      const name = left.json.state.find((e: { type: string }) => e.type === "m.room.name");
      assert.equal(name.content.name, "First name", "the state is the state at the leave");
      assert.deepEqual(left.json.receipts, [], "receipts are for members");

      assert.equal((await initial(dave)).status, 403);
      assert.equal((await initial(dave, "!nope:localhost")).status, 404);
      assert.equal((await initial(dave, "bad")).status, 400);

      // A world-readable room can be peeked at.
      const open = (
        await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", {
          token: alice.accessToken,
          body: {
            visibility: "public",
            initial_state: [
              { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "world_readable" } },
            ],
          },
        })
      ).room_id;
      const sent: string[] = [];
      for (let i = 0; i < 4; i++)
        sent.push(
          (
            await ok(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(open)}/send/m.room.message/o${i}`, {
              token: alice.accessToken,
              body: { msgtype: "m.text", body: `open ${i}` },
            })
          ).event_id,
        );
      const peek = await sdkClient(hs.url, dave).roomInitialSync(open, 3);
      assert.equal(peek.room_id, open);
      assert.equal(peek.membership, "leave");
      assert.deepEqual(
        peek.messages?.chunk.map((e) => e.event_id),
        sent.slice(1),
        "the limit is honoured",
      );
      const raw = await initial(dave, open);
      assertSpec("room_initial_sync.yaml", "/rooms/{roomId}/initialSync", "GET", 200, raw.json);
      assert.equal(raw.json.visibility, "public");
      // The setup before the room became world-readable was `shared` history: a peeker sees from that change on.
      assert.deepEqual(chunkIds(raw.json).slice(1), sent);
      assert.equal(raw.json.messages.chunk[0].type, "m.room.history_visibility");
    });
  });
}
