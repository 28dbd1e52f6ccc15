/**
 * Joining remote rooms from the client API over real federation (hs1, hs2, hs3 in-process on loopback): alice's
 * public room on hs1 with an alias; bob (hs2) joins by the alias, carol (hs3) by room ID with `via`. Each server
 * then has the room: messages of all three arrive on all three servers in the same order; typing and receipts
 * flow; bob leaves and joins again (his server knows the room but has no member in it: make_join again); alice bans
 * carol -> hs3 sees the ban and carol cannot join again (403 from make_join).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type FedServer, register, startFederation, type TestUser } from "./helpers/federation.ts";

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

  before(async () => {
    s = await startFederation(["hs1.test", "hs2.test", "hs3.test"], {
      federation: { retryInitialMs: 200, retryMaxMs: 1000, requestTimeoutMs: 5000 },
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

  test("20 messages from each of alice, bob and carol arrive in the same order on all three servers", async () => {
    const sent: string[] = [];
    for (const who of ["alice", "bob", "carol"]) {
      for (let i = 0; i < 20; i++) {
        const body = `${who} ${i}`;
        await call(
          who,
          "PUT",
          `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${who}${i}`,
          {
            msgtype: "m.text",
            body,
          },
        );
        sent.push(body);
      }
      // The next sender builds on these (one DAG line, so one order everywhere).
      for (const other of ["alice", "bob", "carol"])
        await until(`${who}'s messages at ${other}`, async () => (await bodies(other)).length === sent.length);
    }
    for (const who of ["alice", "bob", "carol"]) assert.deepEqual(await bodies(who), sent, `order at ${who}`);
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

  test("bob leaves and joins again", async () => {
    await call("bob", "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {});
    await until("bob gone at hs1", async () => !(await joined("alice")).includes("@bob:hs2.test"));
    await call("bob", "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}?via=hs1.test`, {});
    await until("bob back at hs1", async () => (await joined("alice")).includes("@bob:hs2.test"));
    await until("bob back at hs3", async () => (await joined("carol")).includes("@bob:hs2.test"));
    await call("bob", "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/back`, {
      msgtype: "m.text",
      body: "bob is back",
    });
    await until("bob's message at hs1", async () => (await bodies("alice")).at(-1) === "bob is back");
  });

  test("alice bans carol: hs3 sees the ban, carol cannot join again (403)", async () => {
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
});
