/**
 * Joining remote rooms from the client API over real federation (hs1, hs2, hs3 in-process on loopback): alice's
 * public room on hs1 with an alias; bob (hs2) joins by the alias, carol (hs3) by room ID with `via`. Each server
 * then has the room: messages of all three arrive on all three servers in the same order; typing and receipts
 * flow; bob leaves and joins again (his server knows the room but has no member in it: make_join again); alice bans
 * carol -> hs3 sees the ban and carol cannot join again (403 from make_join).
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { signEvent } from "../../src/matrix/events/event-signing.ts";
import { eventIdFor } from "../../src/matrix/events/hashing.ts";
import { generateSigningKey } from "../../src/matrix/events/signing.ts";
import { ourKeysResponse } from "../../src/matrix/federation/server-keys.ts";
import { signRequest } from "../../src/matrix/federation/x-matrix.ts";
import { type FedServer, register, startFederation, type TestUser } from "./helpers/federation.ts";

/**
 * slow.test: a server that publishes its key and holds each `PUT /v2/invite` and `GET /event` until the test lets
 * it go — then it drops the connection, answers the invite signed by itself as a homeserver does, or answers 404.
 */
function slowServer() {
  const key = generateSigningKey();
  const held: { url: string; body: any; res: ServerResponse }[] = [];
  const waiters: (() => void)[] = [];
  /** What it answers to get_missing_events. */
  const missing: Record<string, unknown>[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = req.url ?? "";
      if (req.method === "GET" && url.startsWith("/_matrix/key/v2/server")) {
        const cfg = { oldVerifyKeys: {}, keyValidityMs: 86_400_000 } as any;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(ourKeysResponse("slow.test", key, cfg)));
      } else if (
        (req.method === "PUT" && url.startsWith("/_matrix/federation/v2/invite/")) ||
        (req.method === "GET" && url.startsWith("/_matrix/federation/v1/event/"))
      ) {
        const text = Buffer.concat(chunks).toString();
        held.push({ url, body: text ? JSON.parse(text) : null, res });
        for (const w of waiters.splice(0)) w();
      } else if (req.method === "POST" && url.startsWith("/_matrix/federation/v1/get_missing_events/")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ events: missing }));
      } else {
        res.writeHead(404, { "content-type": "application/json" });
        res.end('{"errcode":"M_UNRECOGNIZED"}');
      }
    });
  });
  return {
    server,
    key,
    missing,
    /** The next held request (an invite or a GET /event; waits for it). */
    async next() {
      while (held.length === 0) await new Promise<void>((r) => waiters.push(r));
      return held.shift()!;
    },
    answer(h: { url: string; body: any; res: ServerResponse }) {
      const event = signEvent(h.body.event, "slow.test", key, h.body.room_version);
      h.res.writeHead(200, { "content-type": "application/json" });
      h.res.end(JSON.stringify({ event }));
    },
  };
}

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, deadlineMs = 60_000) {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("federation: joining remote rooms from the client API", () => {
  let s: Record<string, FedServer>;
  const u: Record<string, { user: TestUser; srv: FedServer }> = {};
  let roomId: string;

  const call = async (who: string, method: string, path: string, body?: unknown, expect = 200) => {
    const { user, srv } = u[who];
    const r = await fetch(`${srv.url}${path}`, {
      method,
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${user.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const b = await r.json();
    if (r.status !== expect) throw new Error(`${who} ${method} ${path}: ${r.status} ${JSON.stringify(b)}`);
    return b;
  };
  const bodies = async (who: string) => {
    const m = await call(who, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=500`);
    return (m.chunk as any[])
      .filter((e) => e.type === "m.room.message" && !String(e.content.body).startsWith("pre "))
      .map((e) => e.content.body as string)
      .reverse();
  };
  const joined = async (who: string) =>
    Object.keys(
      (await call(who, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`)).joined,
    ).sort();

  const slow = slowServer();

  before(async () => {
    await new Promise<void>((r) => slow.server.listen(0, "127.0.0.1", r));
    const slowPort = (slow.server.address() as AddressInfo).port;
    s = await startFederation(["hs1.test", "hs2.test", "hs3.test"], {
      federation: { retryInitialMs: 200, retryMaxMs: 1000, requestTimeoutMs: 5000 },
      extra: { "slow.test": `http://127.0.0.1:${slowPort}` },
    });
    for (const [name, srv] of [
      ["alice", s["hs1.test"]],
      ["bob", s["hs2.test"]],
      ["carol", s["hs3.test"]],
    ] as const)
      u[name] = { user: await register(srv.url, name), srv };
    roomId = (
      await call("alice", "POST", "/_matrix/client/v3/createRoom", {
        preset: "public_chat",
        name: "Lobby",
        room_alias_name: "lobby",
      })
    ).room_id;
  });

  after(async () => {
    for (const h of Object.values(s ?? {})) await h.dispose();
    slow.server.closeAllConnections();
    slow.server.close();
  });

  test("bob joins by alias, carol by room ID with via; each sees the room's state in /sync", async () => {
    // Prior history and state: a topic and two messages before anyone else joins.
    const rid = encodeURIComponent(roomId);
    await call("alice", "PUT", `/_matrix/client/v3/rooms/${rid}/state/m.room.topic/`, { topic: "before" });
    for (const i of [0, 1])
      await call("alice", "PUT", `/_matrix/client/v3/rooms/${rid}/send/m.room.message/pre${i}`, {
        msgtype: "m.text",
        body: `pre ${i}`,
      });
    const since = (await call("bob", "GET", "/_matrix/client/v3/sync?timeout=0")).next_batch;
    const r = await call("bob", "POST", `/_matrix/client/v3/join/${encodeURIComponent("#lobby:hs1.test")}`, {});
    assert.equal(r.room_id, roomId);
    const r2 = await call("carol", "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}?via=hs1.test`, {});
    assert.equal(r2.room_id, roomId);
    const all = ["@alice:hs1.test", "@bob:hs2.test", "@carol:hs3.test"];
    for (const who of ["alice", "bob", "carol"])
      await until(`${who} sees three members`, async () => JSON.stringify(await joined(who)) === JSON.stringify(all));
    // Their joins carry their profiles (made on their own servers), as a local join does.
    const members = await call("alice", "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`);
    assert.equal(members.joined["@bob:hs2.test"].display_name, "bob");
    assert.equal(members.joined["@carol:hs3.test"].display_name, "carol");
    // The state the resident sent is state, not timeline: the joiner's timeline starts at its own join, and the
    // state block carries the room's earlier state (initial sync for carol, incremental across the join for bob).
    const check = (who: string, room: any, others: string[]) => {
      assert.ok(room, `${who}'s /sync has the room`);
      const tl = room.timeline.events as any[];
      assert.equal(tl[0]?.type, "m.room.member", `${who}'s timeline starts at a member event: ${JSON.stringify(tl)}`);
      assert.equal(tl[0].state_key, `@${who}:${u[who].srv.name}`, `${who}'s timeline starts at their join`);
      assert.equal(tl[0].content.membership, "join");
      const state = new Map((room.state.events as any[]).map((e) => [`${e.type}|${e.state_key}`, e]));
      assert.equal(state.get("m.room.name|")?.content.name, "Lobby", `${who}: the name is state`);
      assert.equal(state.get("m.room.topic|")?.content.topic, "before", `${who}: the topic is state`);
      assert.ok(state.get("m.room.create|"), `${who}: the create event is state`);
      for (const m of ["@alice:hs1.test", ...others])
        assert.equal(state.get(`m.room.member|${m}`)?.content.membership, "join", `${who}: ${m} in the state`);
    };
    const carolSync = await call("carol", "GET", "/_matrix/client/v3/sync");
    check("carol", carolSync.rooms.join[roomId], ["@bob:hs2.test"]);
    const bobSync = await call("bob", "GET", `/_matrix/client/v3/sync?timeout=0&since=${encodeURIComponent(since)}`);
    const bobRoom = bobSync.rooms.join[roomId];
    // Bob's timeline may also hold carol's later join; it starts at his.
    check("bob", bobRoom, []);
    const back = await call("carol", "GET", `/_matrix/client/v3/rooms/${rid}/messages?dir=b&limit=50`);
    assert.deepEqual(
      (back.chunk as any[]).map((e) => `${e.type}|${e.state_key ?? ""}`),
      ["m.room.member|@carol:hs3.test"],
      "carol's history starts at her join",
    );
  });

  test("100 messages from each of alice, bob and carol arrive in the same order on all three servers", async () => {
    const N = 100;
    // Each sender's messages go 10 at a time (their order is the one its server gives them); the next sender starts
    // once all three servers have them, so the room is one DAG line and has one order everywhere.
    for (const who of ["alice", "bob", "carol"]) {
      for (let b = 0; b < N; b += 10)
        await Promise.all(
          Array.from({ length: 10 }, (_, k) =>
            call(
              who,
              "PUT",
              `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${who}${b + k}`,
              {
                msgtype: "m.text",
                body: `${who} ${b + k}`,
              },
            ),
          ),
        );
      // Arrived everywhere once each server's newest event is the sender's server's newest (one cheap read a poll).
      const newest = async (x: string) =>
        (await call(x, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=1`)).chunk[0]
          ?.event_id;
      const last = await newest(who);
      for (const other of ["alice", "bob", "carol"])
        await until(`${who}'s messages at ${other}`, async () => (await newest(other)) === last);
    }
    const [at1, at2, at3] = [await bodies("alice"), await bodies("bob"), await bodies("carol")];
    assert.deepEqual(at2, at1, "the same order on hs2 as on hs1");
    assert.deepEqual(at3, at1, "the same order on hs3 as on hs1");
    ["alice", "bob", "carol"].forEach((who, n) => {
      const block = at1.slice(n * N, (n + 1) * N);
      const want = Array.from({ length: N }, (_, i) => `${who} ${i}`);
      assert.deepEqual([...block].sort(), [...want].sort(), `${who}'s ${N} messages, each once, in her/his round`);
    });
  });

  test("typing and receipts reach the other servers", async () => {
    await call("bob", "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/@bob:hs2.test`, {
      typing: true,
      timeout: 30000,
    });
    await until("bob typing at hs1", async () => {
      const sync = await call("alice", "GET", "/_matrix/client/v3/sync?timeout=0");
      const eph = sync.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
      return eph.some((e: any) => e.type === "m.typing" && e.content.user_ids.includes("@bob:hs2.test"));
    });
    const m = await call(
      "carol",
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=1`,
    );
    const last = m.chunk[0].event_id;
    await call(
      "carol",
      "POST",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/receipt/m.read/${encodeURIComponent(last)}`,
      {},
    );
    await until("carol's receipt at hs2", async () => {
      const sync = await call("bob", "GET", "/_matrix/client/v3/sync?timeout=0");
      const eph = sync.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
      return eph.some((e: any) => e.type === "m.receipt" && e.content[last]?.["m.read"]?.["@carol:hs3.test"]);
    });
  });

  test("profiles: bob's displayname and avatar change reach hs1 and hs3 as member events; /profile of a remote user", async () => {
    const enc = encodeURIComponent;
    await call("bob", "PUT", `/_matrix/client/v3/profile/${enc("@bob:hs2.test")}/displayname`, {
      displayname: "Bob of hs2",
    });
    await call("bob", "PUT", `/_matrix/client/v3/profile/${enc("@bob:hs2.test")}/avatar_url`, {
      avatar_url: "mxc://hs2.test/bobface",
    });
    for (const who of ["alice", "carol"])
      await until(`bob's new member event at ${who}`, async () => {
        const m = await call(
          who,
          "GET",
          `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc("@bob:hs2.test")}`,
        );
        return m.displayname === "Bob of hs2" && m.avatar_url === "mxc://hs2.test/bobface" && m.membership === "join";
      });
    const members = await call("alice", "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`);
    assert.deepEqual(members.joined["@bob:hs2.test"], {
      display_name: "Bob of hs2",
      avatar_url: "mxc://hs2.test/bobface",
    });
    // alice's server asks hs2 (query/profile) for a remote user's profile.
    const prof = await call("alice", "GET", `/_matrix/client/v3/profile/${enc("@bob:hs2.test")}`);
    assert.deepEqual(prof, { displayname: "Bob of hs2", avatar_url: "mxc://hs2.test/bobface" });
  });

  test("presence: bob's status set on hs2 shows on hs1 in /presence and /sync", async () => {
    const enc = encodeURIComponent;
    await call("bob", "PUT", `/_matrix/client/v3/presence/${enc("@bob:hs2.test")}/status`, {
      presence: "unavailable",
      status_msg: "out for lunch",
    });
    const p = await until("bob's presence at hs1", async () => {
      const r = await call("alice", "GET", `/_matrix/client/v3/presence/${enc("@bob:hs2.test")}/status`);
      return r.presence === "unavailable" && r;
    });
    assert.equal(p.status_msg, "out for lunch");
    const sync = await call("alice", "GET", "/_matrix/client/v3/sync?timeout=0");
    const ev = sync.presence.events.find((e: any) => e.sender === "@bob:hs2.test");
    assert.equal(ev?.content.presence, "unavailable");
    assert.equal(ev?.content.status_msg, "out for lunch");
  });

  test("bob leaves and joins again", async () => {
    await call("bob", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {});
    await until("bob gone at hs1", async () => !(await joined("alice")).includes("@bob:hs2.test"));
    // hs2 has no member left, so its state of the room goes stale: it refuses to make joins for it (404).
    await assert.rejects(
      u.carol.srv.hs.federation.client.request("hs2.test", {
        method: "GET",
        path: `/_matrix/federation/v1/make_join/${encodeURIComponent(roomId)}/${encodeURIComponent("@carol:hs3.test")}?ver=10`,
      }),
      (e: any) => e.status === 404 && e.code === "M_NOT_FOUND",
    );
    await call("bob", "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}?via=hs1.test`, {});
    await until("bob back at hs1", async () => (await joined("alice")).includes("@bob:hs2.test"));
    await until("bob back at hs3", async () => (await joined("carol")).includes("@bob:hs2.test"));
    await call("bob", "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/back`, {
      msgtype: "m.text",
      body: "bob is back",
    });
    await until("bob's message at hs1", async () => (await bodies("alice")).at(-1) === "bob is back");
  });

  test("alice kicks bob: hs2 sees the kick and the room in bob's left rooms; bob joins again", async () => {
    const enc = encodeURIComponent;
    const since = (await call("bob", "GET", "/_matrix/client/v3/sync?timeout=0")).next_batch;
    await call("alice", "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/kick`, {
      user_id: "@bob:hs2.test",
      reason: "cool off",
    });
    const kick = await until("the kick at hs2", async () => {
      const e = await u.bob.srv.hs.store.events.getMembership(roomId, "@bob:hs2.test");
      return e?.membership === "leave" && (await u.bob.srv.hs.store.events.getEvent(e.eventId));
    });
    assert.equal(kick.pdu.sender, "@alice:hs1.test");
    assert.equal(kick.pdu.content.reason, "cool off");
    await until("the kick at hs3", async () => !(await joined("carol")).includes("@bob:hs2.test"));
    const sync = await call("bob", "GET", `/_matrix/client/v3/sync?timeout=0&since=${enc(since)}`);
    const left = sync.rooms.leave?.[roomId]?.timeline?.events ?? [];
    assert.ok(
      left.some(
        (e: any) => e.type === "m.room.member" && e.state_key === "@bob:hs2.test" && e.sender === "@alice:hs1.test",
      ),
      "the room is in bob's left rooms, with the kick",
    );
    assert.ok(!sync.rooms.join?.[roomId], "and not in his joined rooms");
    await call("bob", "POST", `/_matrix/client/v3/join/${enc(roomId)}`, {});
    for (const who of ["alice", "carol"])
      await until(`bob rejoined at ${who}`, async () => (await joined(who)).includes("@bob:hs2.test"));
  });

  test("alice bans carol: hs3 sees the ban, carol cannot join again (403); unbanned, she can", async () => {
    await call("alice", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/ban`, {
      user_id: "@carol:hs3.test",
    });
    await until("the ban at hs3", async () => {
      const m = await u.carol.srv.hs.store.events.getMembership(roomId, "@carol:hs3.test");
      return m?.membership === "ban";
    });
    const err = await call(
      "carol",
      "POST",
      `/_matrix/client/v3/join/${encodeURIComponent(roomId)}?via=hs1.test`,
      {},
      403,
    );
    assert.equal(err.errcode, "M_FORBIDDEN");
    // Unbanned (hs3, with no member left, still gets the unban as its user's membership), she joins again.
    await call("alice", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/unban`, {
      user_id: "@carol:hs3.test",
    });
    await until("the unban at hs3", async () => {
      const m = await u.carol.srv.hs.store.events.getMembership(roomId, "@carol:hs3.test");
      return m?.membership === "leave";
    });
    await call("carol", "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}?via=hs1.test`, {});
    await until("carol back at hs1", async () => (await joined("alice")).includes("@carol:hs3.test"));
  });

  test("an invite-only room: alice invites bob@hs2, bob sees the invite in /sync and joins", async () => {
    const priv = (
      await call("alice", "POST", "/_matrix/client/v3/createRoom", { preset: "private_chat", name: "Secret" })
    ).room_id;
    // Not invited yet: hs1 refuses the join template.
    await call("bob", "POST", `/_matrix/client/v3/join/${encodeURIComponent(priv)}?via=hs1.test`, {}, 403);
    await call("alice", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/invite`, {
      user_id: "@bob:hs2.test",
    });
    const inv = await call("alice", "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/state`);
    const invite = inv.find((e: any) => e.type === "m.room.member" && e.state_key === "@bob:hs2.test");
    assert.equal(invite.content.membership, "invite");
    assert.equal(invite.content.displayname, "Bob of hs2", "the invitee's profile, asked of hs2");
    const stored = await u.alice.srv.hs.store.events.getEvent(invite.event_id);
    assert.ok(stored?.pdu.signatures["hs2.test"], "the invite hs1 keeps is signed by hs2 too");
    const sync = await call("bob", "GET", "/_matrix/client/v3/sync");
    const state = sync.rooms.invite[priv]?.invite_state?.events ?? [];
    assert.ok(
      state.some((e: any) => e.type === "m.room.name" && e.content.name === "Secret"),
      "stripped state",
    );
    assert.ok(
      state.some((e: any) => e.type === "m.room.member" && e.state_key === "@bob:hs2.test"),
      "the invite",
    );
    await call("bob", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/join`, {});
    await until("bob joined at hs1", async () => {
      const j = await call("alice", "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/joined_members`);
      return Object.keys(j.joined).includes("@bob:hs2.test");
    });
    const sync2 = await call("bob", "GET", "/_matrix/client/v3/sync");
    assert.ok(sync2.rooms.join[priv], "the room is in bob's joined rooms");
    assert.ok(!sync2.rooms.invite?.[priv], "and no longer an invite");
  });

  test("bob rejects a federated invite: make_leave/send_leave through hs1; the invite leaves his /sync", async () => {
    const priv = (
      await call("alice", "POST", "/_matrix/client/v3/createRoom", { preset: "private_chat", name: "Declined" })
    ).room_id;
    await call("alice", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/invite`, {
      user_id: "@bob:hs2.test",
    });
    assert.ok((await call("bob", "GET", "/_matrix/client/v3/sync")).rooms.invite[priv]);
    await call("bob", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/leave`, {});
    const at1 = await u.alice.srv.hs.store.events.getMembership(priv, "@bob:hs2.test");
    assert.equal(at1?.membership, "leave", "hs1 has bob's leave");
    const sync = await call("bob", "GET", "/_matrix/client/v3/sync");
    assert.ok(!sync.rooms.invite?.[priv], "no longer an invite");
  });

  test("knock over federation: bob knocks on hs1's room, sees it in /sync, is let in; carol knocks and withdraws, knocks again and is refused", async () => {
    const enc = encodeURIComponent;
    const knockRoom = (
      await call("alice", "POST", "/_matrix/client/v3/createRoom", {
        preset: "private_chat",
        name: "Door",
        room_alias_name: "door",
        initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }],
      })
    ).room_id;
    const memberAt1 = async (user: string) =>
      (await u.alice.srv.hs.store.events.getMembership(knockRoom, user))?.membership;
    // A join is refused (knock rule); a knock by room ID with via goes through hs1's make_knock/send_knock.
    await call("bob", "POST", `/_matrix/client/v3/join/${enc(knockRoom)}?via=hs1.test`, {}, 403);
    const r = await call("bob", "POST", `/_matrix/client/v3/knock/${enc(knockRoom)}?via=hs1.test`, {
      reason: "let me in",
    });
    assert.equal(r.room_id, knockRoom);
    assert.equal(await memberAt1("@bob:hs2.test"), "knock");
    const sync = await call("bob", "GET", "/_matrix/client/v3/sync");
    const st = sync.rooms.knock?.[knockRoom]?.knock_state?.events ?? [];
    assert.ok(
      st.some((e: any) => e.type === "m.room.name" && e.content.name === "Door"),
      "the room's name in knock_state",
    );
    assert.ok(
      st.some((e: any) => e.type === "m.room.member" && e.state_key === "@bob:hs2.test"),
      "his knock in knock_state",
    );
    // alice lets him in (an invite), he joins.
    await call("alice", "POST", `/_matrix/client/v3/rooms/${enc(knockRoom)}/invite`, { user_id: "@bob:hs2.test" });
    await call("bob", "POST", `/_matrix/client/v3/join/${enc(knockRoom)}`, {});
    assert.equal(await memberAt1("@bob:hs2.test"), "join");
    // carol knocks by alias and withdraws the knock (make_leave/send_leave through hs1).
    await call("carol", "POST", `/_matrix/client/v3/knock/${enc("#door:hs1.test")}`, {});
    await until("carol's knock at hs1", async () => (await memberAt1("@carol:hs3.test")) === "knock");
    await call("carol", "POST", `/_matrix/client/v3/rooms/${enc(knockRoom)}/leave`, {});
    assert.equal(await memberAt1("@carol:hs3.test"), "leave");
    const sync3 = await call("carol", "GET", "/_matrix/client/v3/sync");
    assert.ok(!sync3.rooms.knock?.[knockRoom], "no longer a knock");
    // She knocks again and alice refuses (a kick of the knocker): hs3, not in the room, takes it out of band.
    await call("carol", "POST", `/_matrix/client/v3/knock/${enc(knockRoom)}?via=hs1.test`, {});
    assert.ok((await call("carol", "GET", "/_matrix/client/v3/sync")).rooms.knock?.[knockRoom]);
    await call("alice", "POST", `/_matrix/client/v3/rooms/${enc(knockRoom)}/kick`, { user_id: "@carol:hs3.test" });
    await until("the refused knock gone from carol's /sync", async () => {
      const sync = await call("carol", "GET", "/_matrix/client/v3/sync");
      return !sync.rooms.knock?.[knockRoom];
    });
  });

  test("a remote invite does not hold the room: alice's messages go out while slow.test sits on the invite", async () => {
    const room = (
      await call("alice", "POST", "/_matrix/client/v3/createRoom", { preset: "private_chat", name: "Waiting" })
    ).room_id;
    const path = (p: string) => `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/${p}`;
    const state = async () => (await call("alice", "GET", path("state"))) as any[];
    const invite = (user: string) => {
      let settled = false;
      const p = call("alice", "POST", path("invite"), { user_id: user }).finally(() => {
        settled = true;
      });
      p.catch(() => {}); // awaited by the test; never an unhandled rejection meanwhile
      return { p, settled: () => settled };
    };

    // 1. slow.test holds the invite, then drops it: the messages sent meanwhile were not held; no invite is stored.
    const first = invite("@x:slow.test");
    const held1 = await slow.next();
    await call("alice", "PUT", path("send/m.room.message/w1"), { msgtype: "m.text", body: "while inviting" });
    await call("alice", "PUT", path("state/m.room.topic"), { topic: "set while inviting" });
    assert.equal(first.settled(), false, "the sends finished while the invite was still in flight");
    held1.res.socket?.destroy();
    await assert.rejects(first.p, /502|504|M_UNKNOWN|AMI_UNAVAILABLE/);
    assert.ok(!(await state()).some((e) => e.state_key === "@x:slow.test"), "no invite stored");

    // 2. It holds the next one and then answers it: the room moved on meanwhile, so the invite (signed as built,
    // on the old head) forks the room; it is authorised against the state as it is now and stored.
    const second = invite("@y:slow.test");
    const held2 = await slow.next();
    const { event_id: during } = await call("alice", "PUT", path("send/m.room.message/w2"), {
      msgtype: "m.text",
      body: "during the second invite",
    });
    assert.equal(second.settled(), false);
    slow.answer(held2);
    await second.p;
    const member = (await state()).find((e) => e.state_key === "@y:slow.test");
    assert.equal(member?.content.membership, "invite");
    const hs1 = u.alice.srv.hs;
    const stored = await hs1.store.events.getEvent(member.event_id);
    assert.ok(stored?.pdu.signatures["slow.test"], "the invite stored is the one slow.test signed");
    assert.ok(!stored?.pdu.prev_events.includes(during), "built before the message");
    // The next send merges the two extremities.
    const { event_id: after } = await call("alice", "PUT", path("send/m.room.message/w3"), {
      msgtype: "m.text",
      body: "after",
    });
    const merged = await hs1.store.events.getEvent(after);
    assert.deepEqual([...(merged?.pdu.prev_events ?? [])].sort(), [during, member.event_id].sort());
    const topic = (await state()).find((e) => e.type === "m.room.topic");
    assert.equal(topic?.content.topic, "set while inviting", "the resolved state keeps the rest");
  });

  test("a slow origin does not hold the room: the auth event its PDU lacks is fetched outside the room's lock", async () => {
    const hs1 = u.alice.srv.hs;
    const room = (await call("alice", "POST", "/_matrix/client/v3/createRoom", { preset: "public_chat" })).room_id;
    // Stand-in for a federated join: @s:slow.test joined in hs1's state (hs1's own room service writes it).
    const { eventId: sJoin } = await hs1.rooms.setMembership({
      roomId: room,
      sender: "@s:slow.test",
      target: "@s:slow.test",
      membership: "join",
    });
    const version = await hs1.rooms.roomVersion(room);
    const stateId = async (type: string) => (await hs1.store.events.getCurrentStateEvent(room, type, ""))!.eventId;
    const ext = await hs1.store.dag.getForwardExtremities(room);
    const authIds = [await stateId("m.room.create"), await stateId("m.room.power_levels"), sJoin];
    const message = (body: string, prev: string[], depth: number, auth = authIds) => {
      const pdu = signEvent(
        {
          room_id: room,
          sender: "@s:slow.test",
          type: "m.room.message",
          content: { msgtype: "m.text", body },
          origin_server_ts: Date.now(),
          depth,
          prev_events: prev,
          auth_events: auth,
        },
        "slow.test",
        slow.key,
        version,
      );
      return { pdu, id: eventIdFor(pdu, version) };
    };
    let txn = 0;
    const send = (pdus: unknown[]) => {
      const uri = `/_matrix/federation/v1/send/slow${++txn}`;
      const body = { origin: "slow.test", origin_server_ts: Date.now(), pdus, edus: [] };
      return fetch(`${u.alice.srv.url}${uri}`, {
        method: "PUT",
        headers: {
          "Content-Type": "application/json",
          Authorization: signRequest(
            { method: "PUT", uri, origin: "slow.test", destination: "hs1.test", content: body },
            slow.key,
          ),
        },
        body: JSON.stringify(body),
      });
    };
    const ghost = `$${"B".repeat(43)}`;
    const { pdu } = message(
      "from slow",
      ext.map((e) => e.eventId),
      Math.max(...ext.map((e) => e.depth)) + 1,
      [...authIds, ghost],
    );
    let settled = false;
    const sent = send([pdu]).finally(() => {
      settled = true;
    });
    const held = await slow.next();
    assert.match(held.url, /\/event\//, "hs1 asks slow.test for the auth event it lacks");
    await call("alice", "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/s1`, {
      msgtype: "m.text",
      body: "not held up",
    });
    assert.equal(settled, false, "alice's send finished while hs1 was still waiting for slow.test");
    held.res.writeHead(404, { "content-type": "application/json" });
    held.res.end('{"errcode":"M_NOT_FOUND"}');
    const r = await sent;
    assert.equal(r.status, 200);
    const results = (await r.json()).pdus;
    assert.match(Object.values(results as Record<string, { error?: string }>)[0].error ?? "", /auth event/);

    // A gap: slow.test sends b, whose prev a hs1 lacks; get_missing_events (asked before the lock) gives a, and
    // both are applied in order.
    const now = await hs1.store.dag.getForwardExtremities(room);
    const top = Math.max(...now.map((e) => e.depth));
    const a = message(
      "gap a",
      now.map((e) => e.eventId),
      top + 1,
    );
    const b = message("gap b", [a.id], top + 2);
    slow.missing.push(a.pdu);
    const r2 = await send([b.pdu]);
    assert.deepEqual((await r2.json()).pdus, { [b.id]: {} });
    const msgs = await call(
      "alice",
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/messages?dir=b&limit=3`,
    );
    assert.deepEqual(
      msgs.chunk.map((e: any) => e.content.body),
      ["gap b", "gap a", "not held up"],
    );
  });

  test("alice rescinds an invite of bob (a kick of the invitee): the invite leaves bob's /sync on hs2", async () => {
    const priv = (
      await call("alice", "POST", "/_matrix/client/v3/createRoom", { preset: "private_chat", name: "Rescinded" })
    ).room_id;
    await call("alice", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/invite`, {
      user_id: "@bob:hs2.test",
    });
    assert.ok((await call("bob", "GET", "/_matrix/client/v3/sync")).rooms.invite[priv]);
    // A server other than the inviter's cannot withdraw it: hs3's signed leave for bob, building on the invite,
    // is not applied.
    const hs2 = u.bob.srv.hs;
    const hs3 = u.carol.srv.hs;
    const invite = (await hs2.store.events.getMembership(priv, "@bob:hs2.test"))!;
    const version = (await hs2.store.rooms.getRoom(priv))!.version;
    const forged = signEvent(
      {
        room_id: priv,
        sender: "@carol:hs3.test",
        type: "m.room.member",
        state_key: "@bob:hs2.test",
        content: { membership: "leave" },
        origin_server_ts: Date.now(),
        depth: 50,
        prev_events: [invite.eventId],
        auth_events: [invite.eventId],
      },
      "hs3.test",
      hs3.signingKey,
      version,
    );
    const res = await hs3.federation.client.request<any>("hs2.test", {
      method: "PUT",
      path: "/_matrix/federation/v1/send/forged-rescind",
      body: { origin: "hs3.test", origin_server_ts: Date.now(), pdus: [forged], edus: [] },
    });
    assert.ok(res.pdus[eventIdFor(forged, version)].error, "refused");
    assert.equal((await hs2.store.events.getMembership(priv, "@bob:hs2.test"))?.membership, "invite");
    await call("alice", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/kick`, {
      user_id: "@bob:hs2.test",
    });
    await until(
      "the rescinded invite gone from bob's /sync",
      async () => {
        const sync = await call("bob", "GET", "/_matrix/client/v3/sync");
        return !sync.rooms.invite?.[priv];
      },
      10_000,
    );
  });

  test("an event the resident sends before bob's join is stored on hs2 is held, then applied with the join", async () => {
    const race = (await call("alice", "POST", "/_matrix/client/v3/createRoom", { preset: "public_chat" })).room_id;
    const rid = encodeURIComponent(race);
    const hs2 = u.bob.srv.hs;
    let release!: () => void;
    let reached!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const atHook = new Promise<void>((r) => {
      reached = r;
    });
    // hs2 holds its join between hs1's send_join answer and storing the room: the window of the race.
    hs2.federation.hooks.sendJoinAnswered = async (r) => {
      if (r !== race) return;
      reached();
      await gate;
    };
    try {
      const joining = call("bob", "POST", `/_matrix/client/v3/join/${rid}?via=hs1.test`, {});
      await atHook;
      const held = hs2.pduIn.stats.held;
      await call("alice", "PUT", `/_matrix/client/v3/rooms/${rid}/send/m.room.message/race`, {
        msgtype: "m.text",
        body: "during the join",
      });
      await until("hs2 holds alice's message", async () => hs2.pduIn.stats.held > held, 10_000);
      release();
      await joining;
    } finally {
      release();
      delete hs2.federation.hooks.sendJoinAnswered;
    }
    // Applied when the join was stored: there, right after the join, with no other event to pull it in.
    const m = await call("bob", "GET", `/_matrix/client/v3/rooms/${rid}/messages?dir=b&limit=10`);
    assert.deepEqual(
      (m.chunk as any[]).map((e) => (e.type === "m.room.message" ? e.content.body : `${e.type}|${e.state_key}`)),
      ["during the join", "m.room.member|@bob:hs2.test"],
    );
  });

  test("/v2/invite forgeries: another server's inviter, a non-invite, a bad signature -> 4xx, nothing stored", async () => {
    const hs3 = u.carol.srv.hs;
    const { signEvent } = await import("../../src/matrix/events/event-signing.ts");
    const { eventIdFor } = await import("../../src/matrix/events/hashing.ts");
    const { generateSigningKey } = await import("../../src/matrix/events/signing.ts");
    const fake = "!forged:hs3.test";
    const mk = (over: Record<string, unknown>, key = hs3.signingKey) => {
      const e = signEvent(
        {
          room_id: fake,
          sender: "@carol:hs3.test",
          type: "m.room.member",
          state_key: "@bob:hs2.test",
          content: { membership: "invite" },
          origin_server_ts: Date.now(),
          depth: 5,
          prev_events: [`$${"A".repeat(43)}`],
          auth_events: [],
          ...over,
        },
        "hs3.test",
        key,
        "10",
      );
      return { e, id: eventIdFor(e, "10") };
    };
    const put = async (x: { e: any; id: string }) => {
      try {
        await hs3.federation.client.request("hs2.test", {
          method: "PUT",
          path: `/_matrix/federation/v2/invite/${encodeURIComponent(fake)}/${encodeURIComponent(x.id)}`,
          body: { room_version: "10", event: x.e, invite_room_state: [] },
        });
        return 200;
      } catch (err: any) {
        return err.status;
      }
    };
    assert.equal(await put(mk({ sender: "@mallory:hs1.test" })), 403);
    assert.equal(await put(mk({ content: { membership: "join" } })), 400);
    assert.equal(await put(mk({}, generateSigningKey())), 403);
    assert.equal(await put(mk({ state_key: "@nobody:hs2.test" })), 404);
    assert.equal(await u.bob.srv.hs.store.rooms.getRoom(fake), null, "nothing stored");
  });

  test("room version 12 over federation: bob joins alice's hashed-ID room via hs1, both send, both see both", async () => {
    const v12 = (
      await call("alice", "POST", "/_matrix/client/v3/createRoom", {
        preset: "public_chat",
        room_version: "12",
        name: "Twelve",
        creation_content: { additional_creators: ["@carol:hs3.test"] },
      })
    ).room_id as string;
    assert.match(v12, /^![A-Za-z0-9_-]{43}$/);
    const path = (who: string, p: string) =>
      call(who, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(v12)}${p}`);
    // The room ID names no server: the join says where to go.
    const r = await call("bob", "POST", `/_matrix/client/v3/join/${encodeURIComponent(v12)}?via=hs1.test`, {});
    assert.equal(r.room_id, v12);
    const create = await path("bob", "/state/m.room.create/");
    assert.equal(create.room_version, "12");
    assert.deepEqual(create.additional_creators, ["@carol:hs3.test"]);
    assert.equal((await path("bob", "/state/m.room.name/")).name, "Twelve");
    for (const [who, i] of [
      ["alice", 0],
      ["bob", 1],
    ] as const)
      await call(who, "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(v12)}/send/m.room.message/v12${i}`, {
        msgtype: "m.text",
        body: `${who} in v12`,
      });
    const texts = async (who: string) =>
      ((await path(who, "/messages?dir=b&limit=50")).chunk as any[])
        .filter((e) => e.type === "m.room.message")
        .map((e) => e.content.body)
        .sort()
        .join(",");
    for (const who of ["alice", "bob"])
      await until(`${who} sees both v12 messages`, async () => (await texts(who)) === "alice in v12,bob in v12");
    // Bob's server now sends into the room: its events cite no create event, and hs1 accepted them.
    const bobs = ((await path("alice", "/messages?dir=b&limit=50")).chunk as any[]).find(
      (e) => e.sender === "@bob:hs2.test" && e.type === "m.room.message",
    );
    const [stored] = await s["hs1.test"].hs.store.dag.getDagEvents([bobs.event_id]);
    assert.ok(!(stored.pdu.auth_events as string[]).includes(`$${v12.slice(1)}`), "no create event in auth_events");
    assert.equal(stored.rejected, null);
    // Its auth chain as hs1 answers it still holds the create event (implied by the room ID, never cited).
    const chain = await u.bob.srv.hs.federation.client.request<{ auth_chain: any[] }>("hs1.test", {
      method: "GET",
      path: `/_matrix/federation/v1/event_auth/${encodeURIComponent(v12)}/${encodeURIComponent(bobs.event_id)}`,
    });
    assert.ok(
      chain.auth_chain.some((e) => e.type === "m.room.create"),
      "/event_auth of a v12 event includes the create event",
    );

    // An invite into it reaches hs3 with the create event (a full PDU hashing to the room ID) in its stripped state.
    await call("alice", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(v12)}/invite`, {
      user_id: "@carol:hs3.test",
    });
    const inviteState = (await call("carol", "GET", "/_matrix/client/v3/sync")).rooms.invite[v12]?.invite_state?.events;
    const shownCreate = (inviteState ?? []).find((e: any) => e.type === "m.room.create");
    assert.equal(shownCreate?.content?.room_version, "12", "carol's /sync shows the v12 invite with its create event");
    const [carolsInvite] = await u.carol.srv.hs.store.events.getMembers(v12, "invite");
    const sent = (await u.carol.srv.hs.store.events.getEvent(carolsInvite.eventId))?.pdu.unsigned?.invite_room_state;
    assert.ok(
      Array.isArray(sent) && sent.length >= 3 && sent.every((e: any) => e.hashes && e.signatures && e.depth),
      "every invite_room_state entry is a PDU (spec v1.16: formatted according to the room version)",
    );
    // hs3 cannot invite bob into a v12 room while showing him another create event than the room ID's.
    const hs3 = u.carol.srv.hs;
    const { signEvent } = await import("../../src/matrix/events/event-signing.ts");
    const { eventIdFor } = await import("../../src/matrix/events/hashing.ts");
    const sign = (e: Record<string, unknown>) => signEvent(e as any, "hs3.test", hs3.signingKey, "12") as any;
    const realCreate = (await s["hs1.test"].hs.store.events.getCurrentStateEvent(v12, "m.room.create", ""))?.pdu;
    const forgedCreate = sign({
      type: "m.room.create",
      state_key: "",
      sender: "@carol:hs3.test",
      content: { room_version: "12", type: "m.space" },
      origin_server_ts: Date.now(),
      depth: 1,
      prev_events: [],
      auth_events: [],
    });
    const invite = sign({
      room_id: v12,
      sender: "@carol:hs3.test",
      type: "m.room.member",
      state_key: "@dave:hs2.test",
      content: { membership: "invite" },
      origin_server_ts: Date.now(),
      depth: 9,
      prev_events: [`$${"B".repeat(43)}`],
      auth_events: [],
    });
    await u.bob.srv.hs.store.accounts.createUser({
      userId: "@dave:hs2.test",
      passwordHash: null,
      createdTs: 1,
      admin: false,
      deactivated: false,
      isGuest: false,
      displayname: null,
      avatarUrl: null,
    });
    const put = async (state: unknown[]) => {
      try {
        await hs3.federation.client.request("hs2.test", {
          method: "PUT",
          path: `/_matrix/federation/v2/invite/${encodeURIComponent(v12)}/${encodeURIComponent(eventIdFor(invite, "12"))}`,
          body: { room_version: "12", event: invite, invite_room_state: state },
        });
        return 200;
      } catch (err: any) {
        return err.status;
      }
    };
    assert.equal(await put([forgedCreate]), 400, "a create event that is not the room ID's");
    assert.equal(await put([]), 400, "no create event");
    assert.equal(await put([realCreate]), 200, "the room's own create event");
  });

  test("partial-state join (omit_members): bob joins a 50-member room, talks before the resync, gets all members after it (resumed after a restart)", async () => {
    const enc = encodeURIComponent;
    const hs1 = u.alice.srv.hs;
    const big = (await call("alice", "POST", "/_matrix/client/v3/createRoom", { preset: "public_chat" })).room_id;
    const rid = enc(big);
    for (let i = 0; i < 50; i++)
      await hs1.rooms.sendEvent({
        roomId: big,
        sender: `@p${i}:hs1.test`,
        type: "m.room.member",
        stateKey: `@p${i}:hs1.test`,
        content: { membership: "join", displayname: `P${i}` },
      });
    const hs2 = u.bob.srv.hs;
    const fed = hs2.config.federation as { partialStateJoins: boolean };
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    // hs2's resync waits for the gate: everything below until the restart happens in the partial phase.
    hs2.partialState.hold = (r) => (r === big ? gate : Promise.resolve());
    const wasOn = fed.partialStateJoins;
    fed.partialStateJoins = true;
    let pending: Promise<unknown> | null = null;
    try {
      const since = (await call("bob", "GET", "/_matrix/client/v3/sync?timeout=0")).next_batch;
      await call("bob", "POST", `/_matrix/client/v3/join/${rid}?via=hs1.test`, {});
      // The answer had members omitted: the room is marked and hs2 knows few of its 52 members.
      assert.equal((await hs2.store.rooms.getPartialState(big))?.servers[0], "hs1.test");
      assert.ok(hs2.partialState.isPartial(big));
      const known = await hs2.store.events.getMembers(big, "join");
      assert.ok(known.length < 10, `only the heroes and bob are known (${known.length})`);
      assert.equal(await hs2.store.events.getMembership(big, "@p40:hs1.test"), null);
      // /joined_members waits for the resync.
      let settled = false;
      pending = call("bob", "GET", `/_matrix/client/v3/rooms/${rid}/joined_members`).finally(() => {
        settled = true;
      });
      pending.catch(() => {});
      // Bob sends, alice reads; alice and p40 (no member event on hs2) send, bob reads.
      await call("bob", "PUT", `/_matrix/client/v3/rooms/${rid}/send/m.room.message/p1`, {
        msgtype: "m.text",
        body: "bob while partial",
      });
      await call("alice", "PUT", `/_matrix/client/v3/rooms/${rid}/send/m.room.message/p2`, {
        msgtype: "m.text",
        body: "alice to a partial bob",
      });
      await hs1.rooms.sendEvent({
        roomId: big,
        sender: "@p40:hs1.test",
        type: "m.room.message",
        content: { msgtype: "m.text", body: "p40, not in the partial state" },
      });
      const texts = async (who: string) =>
        ((await call(who, "GET", `/_matrix/client/v3/rooms/${rid}/messages?dir=b&limit=100`)).chunk as any[])
          .filter((e) => e.type === "m.room.message")
          .map((e) => e.content.body)
          .reverse();
      await until("bob's message at hs1", async () => (await texts("alice")).includes("bob while partial"), 15_000);
      await until(
        "alice's and p40's messages at hs2",
        async () => {
          const t = await texts("bob");
          return t.includes("alice to a partial bob") && t.includes("p40, not in the partial state");
        },
        15_000,
      );
      const sync = await call("bob", "GET", `/_matrix/client/v3/sync?timeout=0&since=${enc(since)}`);
      const tl = (sync.rooms.join?.[big]?.timeline?.events ?? []).map((e: any) => e.content.body);
      assert.ok(tl.includes("p40, not in the partial state"), "in bob's /sync too");
      assert.ok(hs2.partialState.isPartial(big), "all of it before the resync");
      assert.equal(settled, false, "/joined_members still waits");
      assert.ok(hs2.partialState.stats.uncheckedAccepted >= 1, "p40's message was accepted on its auth events");
      // hs2 gives out neither joins nor state of the room meanwhile.
      await assert.rejects(
        u.carol.srv.hs.federation.client.request("hs2.test", {
          method: "GET",
          path: `/_matrix/federation/v1/make_join/${rid}/${enc("@carol:hs3.test")}?ver=10`,
        }),
        (e: any) => e.status === 404 && /partial/.test(String(e.message)),
      );
    } finally {
      fed.partialStateJoins = wasOn;
    }
    // hs2 restarts with the resync still held: it resumes on start-up and completes.
    const token = (await call("bob", "GET", "/_matrix/client/v3/sync?timeout=0")).next_batch;
    await u.bob.srv.stop();
    release();
    await pending?.catch(() => {});
    await u.bob.srv.start();
    await until(
      "the resync after the restart",
      async () => (await u.bob.srv.hs.store.rooms.getPartialState(big)) === null,
      20_000,
    );
    const members = await call("bob", "GET", `/_matrix/client/v3/rooms/${rid}/members?membership=join`);
    const ids = (members.chunk as any[]).map((e) => e.state_key);
    for (let i = 0; i < 50; i++) assert.ok(ids.includes(`@p${i}:hs1.test`), `@p${i} in /members`);
    assert.equal(ids.length, 52);
    // The room's head now carries the full state: the state after its forward extremity has every member.
    const hs2b = u.bob.srv.hs;
    const [ext] = await hs2b.store.dag.getForwardExtremities(big);
    const atHead = await hs2b.store.dag.getStateIdsAtEvent(ext.eventId, "after");
    assert.equal([...(atHead?.keys() ?? [])].filter((k) => k.startsWith("m.room.member")).length, 52);
    assert.equal(
      Object.keys((await call("bob", "GET", `/_matrix/client/v3/rooms/${rid}/joined_members`)).joined).length,
      52,
    );
    // The members learnt by the resync come to bob's client as state in the next /sync.
    const after = await call("bob", "GET", `/_matrix/client/v3/sync?timeout=0&since=${enc(token)}`);
    const state = (after.rooms.join?.[big]?.state?.events ?? []).filter((e: any) => e.type === "m.room.member");
    assert.ok(
      state.some((e: any) => e.state_key === "@p40:hs1.test"),
      "p40's member event delivered as state",
    );
    assert.ok(state.length >= 40, `the learnt members as state (${state.length})`);
    // Bob and p40 still talk after it.
    await hs1.rooms.sendEvent({
      roomId: big,
      sender: "@p40:hs1.test",
      type: "m.room.message",
      content: { msgtype: "m.text", body: "p40 after the resync" },
    });
    await until(
      "p40's second message at hs2",
      async () => {
        const m = await call("bob", "GET", `/_matrix/client/v3/rooms/${rid}/messages?dir=b&limit=5`);
        return (m.chunk as any[]).some((e) => e.content?.body === "p40 after the resync");
      },
      15_000,
    );
  });
});
