/**
 * Server side search and the user directory against the homeserver in a child process, on SQLite and on PostgreSQL:
 * /search over 3,000 messages (highlights, next_batch walking every result once in both orders, rank vs recent,
 * event_context, groupings, filters, include_state), matrix-js-sdk's searchRoomEvents, history visibility (a later
 * joiner of a `joined` room, a user who left, a stranger, a redaction), and /user_directory/search with and without
 * searchAllUsers. Every answer is checked against the spec's schemas.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { api, enc, ok, registerUser, type Session, sdkClient } from "./helpers/client.ts";
import { BACKENDS, ChildHomeserver } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const N = 3_000;

for (const backend of BACKENDS) {
  describe(`search (${backend})`, () => {
    let hs: ChildHomeserver;
    let alice: Session;
    let bob: Session;
    let carol: Session;
    let dave: Session;
    let eve: Session;
    let big: string;
    let small: string;
    let txn = 0;

    const call = (s: Session, method: string, path: string, body?: unknown) =>
      ok(hs.url, method, C + path, { token: s.accessToken, body });
    const send = async (s: Session, roomId: string, body: string): Promise<string> =>
      (await call(s, "PUT", `/rooms/${enc(roomId)}/send/m.room.message/s${++txn}`, { msgtype: "m.text", body }))
        .event_id;
    const join = (s: Session, roomId: string) => call(s, "POST", `/join/${enc(roomId)}`, {});
    async function search(s: Session, roomEvents: Record<string, unknown>, nextBatch?: string): Promise<any> {
      const q = nextBatch ? `?next_batch=${enc(nextBatch)}` : "";
      const r = await api(hs.url, "POST", `${C}/search${q}`, {
        token: s.accessToken,
        body: { search_categories: { room_events: roomEvents } },
      });
      assert.equal(r.status, 200, r.text);
      assertSpec("search.yaml", "/search", "POST", 200, r.json);
      return r.json.search_categories.room_events;
    }
    const bodies = (re: any): string[] => re.results.map((x: any) => x.result.content.body);

    before(async () => {
      hs = await ChildHomeserver.start({ backend });
      [alice, bob, carol, dave, eve] = await Promise.all(
        ["alice", "bob", "carol", "dave", "eve"].map((u) => registerUser(hs.url, `${u}${backend}`)),
      );
      await call(alice, "PUT", `/profile/${enc(alice.userId)}/displayname`, { displayname: "Alice Searcher" });
      big = (await call(alice, "POST", "/createRoom", { preset: "private_chat", name: "Haystack" })).room_id;
      await call(alice, "POST", `/rooms/${enc(big)}/invite`, { user_id: bob.userId });
      await join(bob, big);
      // 3,000 messages, 32 sends in flight: every one says "message", every 100th also "zebra".
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < N) {
            const i = next++;
            await send(i % 2 ? bob : alice, big, `message ${i}${i % 100 === 0 ? " zebra" : ""} in the haystack`);
          }
        }),
      );
      small = (await call(alice, "POST", "/createRoom", { preset: "private_chat", topic: "apples and pears" })).room_id;
      await call(alice, "POST", `/rooms/${enc(small)}/invite`, { user_id: bob.userId });
      await join(bob, small);
      await send(alice, small, "apple");
      await send(bob, small, "apple apple apple pie");
      await send(alice, small, "one apple a day");
    });
    after(async () => {
      await hs?.dispose();
    });

    it(`walks all ${N} matches with next_batch, newest first and by rank, without duplicates`, async () => {
      for (const order_by of ["recent", "rank"]) {
        const seen = new Set<string>();
        let batch: string | undefined;
        let pages = 0;
        do {
          const re = await search(
            alice,
            { search_term: "message", order_by, filter: { limit: 500, rooms: [big] } },
            batch,
          );
          assert.equal(re.count, N);
          for (const r of re.results) {
            assert.ok(!seen.has(r.result.event_id), `duplicate ${r.result.event_id} (${order_by})`);
            seen.add(r.result.event_id);
          }
          batch = re.next_batch;
          pages++;
        } while (batch);
        assert.equal(seen.size, N, order_by);
        assert.equal(pages, N / 500, order_by);
      }
    });

    it("highlights the matched words; a prefix matches; rank and recent differ", async () => {
      const re = await search(alice, { search_term: "zeb", filter: { limit: 1000 } });
      assert.equal(re.count, N / 100);
      assert.ok(re.highlights.includes("zebra"), JSON.stringify(re.highlights));
      assert.ok(bodies(re).every((b) => b.includes("zebra")));
      const recent = await search(alice, { search_term: "apple", order_by: "recent", keys: ["content.body"] });
      assert.deepEqual(bodies(recent), ["one apple a day", "apple apple apple pie", "apple"]);
      const ranked = await search(alice, { search_term: "apple", order_by: "rank", keys: ["content.body"] });
      assert.equal(bodies(ranked)[0], "apple apple apple pie");
      assert.ok(ranked.results[0].rank > ranked.results[2].rank);
      const topic = await search(alice, { search_term: "pears", keys: ["content.topic"] });
      assert.equal(topic.count, 1);
      assert.equal(topic.results[0].result.type, "m.room.topic");
      const name = await search(alice, { search_term: "haystack", keys: ["content.name"] });
      assert.deepEqual(
        name.results.map((r: any) => r.result.content.name),
        ["Haystack"],
      );
      assert.equal((await search(alice, { search_term: "   " })).count, 0);
    });

    it("filters by rooms, not_rooms, senders, types", async () => {
      assert.equal((await search(alice, { search_term: "apple", filter: { rooms: [big] } })).count, 0);
      assert.equal(
        (await search(alice, { search_term: "apple", filter: { not_rooms: [big] } })).count,
        4,
        "3 messages, 1 topic",
      );
      const byBob = await search(alice, { search_term: "apple", filter: { senders: [bob.userId] } });
      assert.deepEqual(bodies(byBob), ["apple apple apple pie"]);
      const notBob = await search(alice, { search_term: "zebra", filter: { not_senders: [bob.userId] } });
      assert.equal(notBob.count, N / 100, "even-numbered messages are alice's");
      assert.equal((await search(alice, { search_term: "apple", filter: { types: ["m.room.topic"] } })).count, 1);
    });

    it("event_context, include_state and groupings", async () => {
      const re = await search(alice, {
        search_term: "pie",
        event_context: { before_limit: 1, after_limit: 3, include_profile: true },
        include_state: true,
        groupings: { group_by: [{ key: "room_id" }, { key: "sender" }] },
      });
      assert.equal(re.results.length, 1);
      const ctx = re.results[0].context;
      assert.deepEqual(
        ctx.events_before.map((e: any) => e.content.body),
        ["apple"],
      );
      assert.deepEqual(
        ctx.events_after.map((e: any) => e.content.body),
        ["one apple a day"],
      );
      assert.equal(ctx.profile_info[alice.userId].displayname, "Alice Searcher");
      assert.ok(ctx.profile_info[bob.userId]);
      assert.ok(re.state[small].some((e: any) => e.type === "m.room.create"));
      const id = re.results[0].result.event_id;
      assert.deepEqual(re.groups.room_id[small].results, [id]);
      assert.deepEqual(re.groups.sender[bob.userId].results, [id]);
      const many = await search(alice, {
        search_term: "apple",
        order_by: "recent",
        keys: ["content.body"],
        groupings: { group_by: [{ key: "sender" }] },
      });
      assert.equal(many.groups.sender[alice.userId].results.length, 2);
    });

    it("matrix-js-sdk searchRoomEvents and backPaginateRoomEventsSearch", async () => {
      const c = sdkClient(hs.url, alice);
      const res = await c.searchRoomEvents({ term: "zebra" });
      assert.equal(res.count, N / 100);
      assert.equal(res.results.length, 10);
      assert.ok(res.highlights.includes("zebra"));
      assert.ok(res.results[0].context.getEvent().getContent().body.includes("zebra"));
      await c.backPaginateRoomEventsSearch(res);
      assert.equal(res.results.length, 20);
      assert.equal(new Set(res.results.map((r) => r.context.getEvent().getId())).size, 20);
      c.stopClient();
    });

    it("history visibility: a later joiner of a joined room, a user who left, a stranger; redactions", async () => {
      const room = (
        await call(alice, "POST", "/createRoom", {
          preset: "public_chat",
          initial_state: [
            { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } },
          ],
        })
      ).room_id;
      await join(carol, room);
      await send(alice, room, "kumquat early");
      await join(dave, room);
      await send(alice, room, "kumquat middle");
      await call(carol, "POST", `/rooms/${enc(room)}/leave`, {});
      await send(alice, room, "kumquat late");
      const gone = await send(alice, room, "kumquat redacted");
      await call(alice, "PUT", `/rooms/${enc(room)}/redact/${enc(gone)}/r${++txn}`, {});
      assert.deepEqual(bodies(await search(alice, { search_term: "kumquat", order_by: "recent" })), [
        "kumquat late",
        "kumquat middle",
        "kumquat early",
      ]);
      const later = await search(dave, { search_term: "kumquat", order_by: "recent" });
      assert.deepEqual(bodies(later), ["kumquat late", "kumquat middle"], "joined later: nothing from before");
      assert.equal(later.count, 2);
      const left = await search(carol, { search_term: "kumquat", order_by: "recent" });
      assert.deepEqual(bodies(left), ["kumquat middle", "kumquat early"], "left: nothing after");
      assert.equal(left.count, 2);
      const stranger = await search(eve, { search_term: "kumquat" });
      assert.equal(stranger.count, 0);
      assert.deepEqual(stranger.results, []);
      assert.equal((await search(eve, { search_term: "zebra", filter: { rooms: [big] } })).count, 0);
      const bad = await api(hs.url, "POST", `${C}/search?next_batch=r5`, {
        token: alice.accessToken,
        body: { search_categories: { room_events: { search_term: "x", order_by: "rank" } } },
      });
      assert.equal(bad.status, 400);
    });

    it("user directory: shared rooms and public rooms only", async () => {
      const lonely = await registerUser(hs.url, `zed${backend}`);
      const pub = (await call(eve, "POST", "/createRoom", { preset: "public_chat" })).room_id;
      assert.ok(pub);
      const find = async (s: Session, term: string, limit?: number) => {
        const r = await api(hs.url, "POST", `${C}/user_directory/search`, {
          token: s.accessToken,
          body: { search_term: term, ...(limit === undefined ? {} : { limit }) },
        });
        assert.equal(r.status, 200, r.text);
        assertSpec("users.yaml", "/user_directory/search", "POST", 200, r.json);
        return r.json;
      };
      const a = await find(bob, "alice");
      assert.deepEqual(a.results, [{ user_id: alice.userId, display_name: "Alice Searcher" }]);
      assert.equal(a.limited, false);
      assert.equal((await find(bob, "searcher")).results[0]?.user_id, alice.userId, "display name words");
      assert.deepEqual(
        (await find(bob, "eve")).results.map((u: any) => u.user_id),
        [eve.userId],
        "in a public room",
      );
      assert.deepEqual((await find(bob, "zed")).results, [], "shares no room, in no public room");
      assert.deepEqual((await find(lonely, "bob")).results, []);
      await call(eve, "PUT", `/profile/${enc(eve.userId)}/displayname`, { displayname: "Eve Searcher" });
      const lim = await find(bob, "searcher", 1);
      assert.equal(lim.results.length, 1);
      assert.equal(lim.limited, true);
    });
  });
}

describe("user directory with searchAllUsers", () => {
  let hs: ChildHomeserver;
  before(async () => {
    hs = await ChildHomeserver.start({ matrix: { userDirectory: { searchAllUsers: true } } });
  });
  after(async () => {
    await hs?.dispose();
  });
  it("finds a user who shares no room", async () => {
    const a = await registerUser(hs.url, "asker");
    const z = await registerUser(hs.url, "zed");
    const r = await ok(hs.url, "POST", `${C}/user_directory/search`, {
      token: a.accessToken,
      body: { search_term: "ze" },
    });
    assertSpec("users.yaml", "/user_directory/search", "POST", 200, r);
    assert.deepEqual(r.results, [{ user_id: z.userId, display_name: "zed" }]);
  });
});
