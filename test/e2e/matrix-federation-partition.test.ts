/**
 * Partitions, restarts and convergence over real federation: hs1, hs2, hs3 in-process on loopback, one room with
 * members on all three. hs1 and hs2 reach each other through TCP proxies (helpers/federation.ts LinkProxy) that the
 * test cuts and heals; hs3 reaches both directly.
 *
 * - hs1 restarted while hs2 is down: the PDUs and to-device messages queued for hs2 are not lost (the durable
 *   outbox and the destination catch-up of federation/sender.ts).
 * - hs1 and hs2 send conflicting state (power levels, topic, bans) while partitioned; once healed (nothing but the
 *   servers' own retries), all three have the same current state, equal to state resolution v2 of the two sides'
 *   states computed here with the plain transcription of the spec (bench/matrix/state-res-plain.ts).
 * - seeded random forks, several rounds: the same, every round.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { resolveStateV2Plain } from "../../bench/matrix/state-res-plain.ts";
import { rng } from "../../src/core/prng.ts";
import { type StateKey, stateKey } from "../../src/matrix/events/auth.ts";
import type { StateResEvent } from "../../src/matrix/events/auth-chain.ts";
import { stateResEventOf } from "../../src/matrix/federation/pdu-in.ts";
import { waitFor } from "./helpers/client.ts";
import {
  type FedServer,
  LinkProxy,
  register,
  sendToDevice,
  startFederation,
  type TestUser,
  ToDeviceInbox,
} from "./helpers/federation.ts";

const until = <T>(what: string, fn: () => Promise<T>, ms = 30_000) => waitFor(what, fn, ms, 50);
const SEED = Number(process.env.AMI_PARTITION_SEED ?? 20261207);

describe("federation: partitions, restarts and convergence of three servers", () => {
  let s: Record<string, FedServer>;
  let hs1: FedServer;
  let hs2: FedServer;
  let hs3: FedServer;
  /** hs1 -> hs2 and hs2 -> hs1. */
  let p12: LinkProxy;
  let p21: LinkProxy;
  const u: Record<string, { user: TestUser; srv: () => FedServer }> = {};
  let roomId: string;
  let version: string;

  const call = async (who: string, method: string, path: string, body?: unknown) => {
    const { user, srv } = u[who];
    const r = await fetch(`${srv().url}${path}`, {
      method,
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${user.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const b = await r.json();
    return { status: r.status, body: b };
  };
  const must = async (who: string, method: string, path: string, body?: unknown) => {
    const r = await call(who, method, path, body);
    if (r.status !== 200) throw new Error(`${who} ${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const room = () => `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;
  let txn = 0;
  /** A state event from `who`; its event ID, or null when its server refuses it (auth, as a client sees it). */
  const setState = async (who: string, type: string, key: string, content: unknown): Promise<string | null> => {
    const r = await call(who, "PUT", `${room()}/state/${type}/${encodeURIComponent(key)}`, content);
    if (r.status === 403) return null;
    if (r.status !== 200) throw new Error(`${who} state ${type}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.event_id;
  };
  const say = async (who: string, body: string): Promise<string> =>
    (await must(who, "PUT", `${room()}/send/m.room.message/t${++txn}`, { msgtype: "m.text", body })).event_id;
  /** A server's current state, (type, state_key) -> event ID, as its clients read it. */
  const stateAt = async (who: string): Promise<Map<StateKey, string>> => {
    const evs = (await must(who, "GET", `${room()}/state`)) as any[];
    return new Map(evs.map((e) => [stateKey(e.type, e.state_key), e.event_id]));
  };
  const show = (m: ReadonlyMap<StateKey, string>) =>
    Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k.replace("\u0000", "|"), v]));
  /** Events `ids` are known to `srv` (in its timeline, or kept as outliers: soft-failed). */
  const knows = async (srv: FedServer, ids: string[]) => {
    const want = new Set(ids);
    const got = await srv.hs.store.dag.getDagEvents([...want]);
    return got.length === want.size;
  };
  /** The events of these IDs and of their whole auth chains, as state resolution reads them (from hs3's store). */
  const withAuthChains = async (ids: Iterable<string>): Promise<Map<string, StateResEvent>> => {
    const out = new Map<string, StateResEvent>();
    let todo = [...new Set(ids)];
    while (todo.length > 0) {
      const got = await hs3.hs.store.dag.getDagEvents(todo);
      assert.equal(got.length, todo.length, "hs3 has every event");
      todo = [];
      for (const e of got) {
        const ev = stateResEventOf(e);
        out.set(e.eventId, ev);
        for (const a of ev.auth_events) if (!out.has(a)) todo.push(a);
      }
      todo = [...new Set(todo)].filter((x) => !out.has(x));
    }
    return out;
  };
  /** `base` with the state events `ids` (one side's, in order) laid over it. */
  const overlay = async (base: Map<StateKey, string>, ids: string[]) => {
    // Each side's events are a chain on its server: applied in the order sent.
    const out = new Map(base);
    const evs = await withAuthChains(ids);
    for (const id of ids) {
      const e = evs.get(id)!;
      out.set(stateKey(e.type, e.state_key!), id);
    }
    return out;
  };

  /** Cut hs1 <-> hs2, run `sides` (hs1's and hs2's sends), heal; returns each side's state event IDs. */
  const partitioned = async (sides: () => Promise<{ a: string[]; b: string[] }>) => {
    p12.cut();
    p21.cut();
    try {
      return await sides();
    } finally {
      p12.heal();
      p21.heal();
    }
  };

  /**
   * After a heal: every server has every event of both sides, and all three report the same current state, equal
   * to resolve(base + side A, base + side B) computed here. Returns that state.
   */
  const converged = async (base: Map<StateKey, string>, a: string[], b: string[], what: string) => {
    const all = [...a, ...b];
    for (const srv of [hs1, hs2, hs3]) await until(`${srv.name} to have both sides (${what})`, () => knows(srv, all));
    // A side that sent nothing has no tip of its own: the other side's first event was built on its last one.
    const sets = a.length === 0 && b.length === 0 ? [base] : [];
    for (const side of [a, b]) if (side.length > 0) sets.push(await overlay(base, side));
    const events = await withAuthChains(sets.flatMap((m) => [...m.values()]));
    const expected = resolveStateV2Plain(version, sets, events);
    let last: Record<string, Map<StateKey, string>> = {};
    try {
      await until(`the three servers to agree (${what})`, async () => {
        last = { alice: await stateAt("alice"), bob: await stateAt("bob"), carol: await stateAt("carol") };
        return Object.values(last).every((m) => JSON.stringify(show(m)) === JSON.stringify(show(expected)));
      });
    } catch (e) {
      if (process.env.AMI_PARTITION_DEBUG) {
        const desc = (id: string) => {
          const x = events.get(id);
          return x ? `${id} ${x.type}|${x.state_key} by ${x.sender} ${JSON.stringify(x.content)}` : id;
        };
        console.log("A:", a.map(desc), "\nB:", b.map(desc));
        for (const [who, m] of Object.entries(last)) console.log(who, show(m));
        console.log("expected", show(expected));
      }
      for (const [who, m] of Object.entries(last))
        assert.deepEqual(show(m), show(expected), `${who}'s state (${what})`);
      throw e;
    }
    return expected;
  };

  before(async () => {
    p12 = await LinkProxy.start();
    p21 = await LinkProxy.start();
    s = await startFederation(["hs1.test", "hs2.test", "hs3.test"], {
      federation: { retryInitialMs: 100, retryMaxMs: 500, requestTimeoutMs: 3000 },
      route: { "hs1.test": { "hs2.test": p12.url }, "hs2.test": { "hs1.test": p21.url } },
    });
    hs1 = s["hs1.test"];
    hs2 = s["hs2.test"];
    hs3 = s["hs3.test"];
    p12.target = hs2.port;
    p21.target = hs1.port;
    for (const [name, srv] of [
      ["alice", "hs1.test"],
      ["dave", "hs1.test"],
      ["bob", "hs2.test"],
      ["carol", "hs3.test"],
      ["eve", "hs3.test"],
    ] as const)
      u[name] = { user: await register(s[srv].url, name), srv: () => s[srv] };
    roomId = (await must("alice", "POST", "/_matrix/client/v3/createRoom", { preset: "public_chat", name: "Fork" }))
      .room_id;
    version = await hs1.hs.rooms.roomVersion(roomId);
    for (const who of ["dave", "bob", "carol", "eve"])
      await must(who, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}?via=hs1.test`, {});
    const pl = (await must("alice", "GET", `${room()}/state/m.room.power_levels/`)) as Record<string, any>;
    // bob may change power levels (75) but ranks below alice (100), who can demote him.
    const levels = {
      ...pl,
      users: { ...pl.users, [u.bob.user.userId]: 75, [u.carol.user.userId]: 50 },
      events: { ...pl.events, "m.room.power_levels": 75 },
    };
    const plId = await setState("alice", "m.room.power_levels", "", levels);
    for (const srv of [hs2, hs3]) await until(`${srv.name} to have the power levels`, () => knows(srv, [plId!]));
  });

  after(async () => {
    for (const h of Object.values(s ?? {})) await h.dispose();
    await p12?.close();
    await p21?.close();
  });

  test("hs1 restarted while hs2 is down: hs2 gets the queued messages and to-device messages after all", async (t) => {
    const inbox = new ToDeviceInbox(hs2.url, u.bob.user);
    await inbox.poll(0);
    await hs2.stop();
    // The tests after this one need hs2 back even if this one fails.
    t.after(async () => {
      if (!hs2.running) await hs2.start();
    });
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) sent.push(await say("alice", `while hs2 is down ${i}`));
    for (let i = 0; i < 3; i++)
      await sendToDevice(hs1.url, u.alice.user, `down${i}`, { [u.bob.user.userId]: { [u.bob.user.deviceId]: { i } } });
    await until(
      "hs1 to back off hs2",
      async () => ((await hs1.hs.store.destinations.getDestination("hs2.test"))?.failures ?? 0) >= 1,
    );
    // hs3 is up: it has them all already.
    await until("hs3 to have them", () => knows(hs3, sent));
    await hs1.stop();
    await hs1.start();
    const st = (await hs1.hs.federation.sender.status()).find((d) => d.destination === "hs2.test");
    // (Queued, or in the transaction being tried: hs2 is down, it cannot have been delivered.)
    assert.equal(st?.queuedEdus, 3, "the to-device messages are queued again from the outbox");
    assert.deepEqual(await hs1.hs.store.destinations.destinationsOwed(), ["hs2.test"], "hs2 is owed the messages");
    await hs2.start();
    const got = await inbox.take(3, 30_000);
    assert.deepEqual(
      got.map((e) => e.content.i),
      [0, 1, 2],
    );
    await until("hs2 to have the messages", () => knows(hs2, sent));
    const m = await must("bob", "GET", `${room()}/messages?dir=b&limit=20`);
    const bodies = (m.chunk as any[])
      .filter((e) => e.type === "m.room.message")
      .map((e) => e.event_id)
      .reverse();
    assert.deepEqual(bodies.slice(-5), sent, "in order in bob's timeline");
    await until("nothing owed any more", async () => (await hs1.hs.store.destinations.destinationsOwed()).length === 0);
    await until("the outbox empty", async () => (await hs1.hs.store.destinations.listOutbox()).length === 0);
  });

  let agreed: Map<StateKey, string>;
  /** The current state once all three servers report the same one. */
  const shared = async () => {
    let st = new Map<StateKey, string>();
    await until("all three to share one state", async () => {
      const [a, b, c] = [await stateAt("alice"), await stateAt("bob"), await stateAt("carol")];
      st = c;
      return JSON.stringify(show(a)) === JSON.stringify(show(c)) && JSON.stringify(show(b)) === JSON.stringify(show(c));
    });
    return st;
  };

  test("conflicting power levels, topic and bans while partitioned: all three agree on the resolved state", async () => {
    agreed = await shared();
    const pl = (await must("alice", "GET", `${room()}/state/m.room.power_levels/`)) as Record<string, any>;
    const { a, b } = await partitioned(async () => {
      const a: string[] = [];
      const b: string[] = [];
      const push = (side: string[], id: string | null) => {
        assert.ok(id, "its own server accepts it");
        side.push(id);
      };
      // hs1: alice demotes bob to 50 and sets the topic; bans eve.
      push(a, await setState("alice", "m.room.topic", "", { topic: "from hs1" }));
      push(
        a,
        await setState("alice", "m.room.power_levels", "", { ...pl, users: { ...pl.users, [u.bob.user.userId]: 50 } }),
      );
      push(a, await setState("alice", "m.room.member", u.eve.user.userId, { membership: "ban", reason: "hs1" }));
      // hs2: bob promotes carol to his own level, sets the topic, bans dave and eve.
      push(b, await setState("bob", "m.room.topic", "", { topic: "from hs2" }));
      push(
        b,
        await setState("bob", "m.room.power_levels", "", { ...pl, users: { ...pl.users, [u.carol.user.userId]: 75 } }),
      );
      push(b, await setState("bob", "m.room.member", u.dave.user.userId, { membership: "ban", reason: "hs2" }));
      push(b, await setState("bob", "m.room.member", u.eve.user.userId, { membership: "ban", reason: "hs2" }));
      // hs3 hears both sides while hs1 and hs2 cannot reach each other.
      await until("hs3 to have both sides", () => knows(hs3, [...a, ...b]));
      assert.ok(!(await knows(hs1, b)) && !(await knows(hs2, a)), "the partition held");
      return { a, b };
    });
    agreed = await converged(agreed, a, b, "power levels, topic, bans");
    assert.ok(p12.refused + p21.refused > 0, "the proxies refused connections while cut");
  });

  test("seeded random forks, round after round, converge identically on all three servers", async () => {
    const r = rng(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
    // Never carol: hs3 must keep a member to be sent the room's events (a server with none has left it).
    const targets = ["dave", "eve"];
    const randomState = async (who: string): Promise<string | null> => {
      const k = r();
      if (k < 0.3) return setState(who, "m.room.topic", "", { topic: `${who} ${Math.floor(r() * 1e6)}` });
      if (k < 0.45) return setState(who, "m.room.name", "", { name: `${who} ${Math.floor(r() * 1e6)}` });
      if (k < 0.6) return setState(who, "m.room.join_rules", "", { join_rule: pick(["public", "invite"]) });
      if (k < 0.8) {
        const pl = (await must(who, "GET", `${room()}/state/m.room.power_levels/`)) as Record<string, any>;
        const users = { ...pl.users, [u[pick([...targets, "carol"])].user.userId]: pick([0, 25, 50, 75]) };
        return setState(who, "m.room.power_levels", "", {
          ...pl,
          users,
          state_default: pick([50, 50, 75]),
          events: { ...pl.events, "m.room.topic": pick([0, 50, 100]) },
        });
      }
      const target = u[pick(targets)].user.userId;
      return setState(who, "m.room.member", target, { membership: pick(["ban", "leave"]) });
    };
    agreed = await shared();
    for (let round = 0; round < 5; round++) {
      const { a, b } = await partitioned(async () => {
        const a: string[] = [];
        const b: string[] = [];
        const n = 2 + Math.floor(r() * 4);
        for (let i = 0; i < n; i++) {
          const side = r() < 0.5 ? a : b;
          const id = await randomState(side === a ? "alice" : "bob");
          // (null: refused by its own server; an unchanged state event answers the existing one's ID.)
          if (id && !side.includes(id)) side.push(id);
        }
        try {
          await until("hs3 to have both sides", () => knows(hs3, [...a, ...b]));
        } catch (e) {
          if (process.env.AMI_PARTITION_DEBUG) {
            const have = new Set((await hs3.hs.store.dag.getDagEvents([...a, ...b])).map((x) => x.eventId));
            console.log(
              "round",
              round,
              "missing at hs3:",
              [...a, ...b].filter((x) => !have.has(x)),
              { a, b },
            );
            console.log(
              "hs1 sender",
              hs1.hs.federation.sender.snapshot(),
              "hs2 sender",
              hs2.hs.federation.sender.snapshot(),
            );
            console.log("hs3 pdu stats", hs3.hs.pduIn.stats);
          }
          throw e;
        }
        return { a, b };
      });
      agreed = await converged(agreed, a, b, `round ${round} (seed ${SEED})`);
    }
    // Life goes on: a message from each server (each merging the forks it holds) changes no state anywhere.
    const msgs = [await say("alice", "after"), await say("bob", "after"), await say("carol", "after")];
    for (const srv of [hs1, hs2, hs3]) await until(`${srv.name} to have the messages`, () => knows(srv, msgs));
    assert.deepEqual(show(await shared()), show(agreed));
  });
});
