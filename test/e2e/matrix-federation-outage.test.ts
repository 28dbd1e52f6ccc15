/**
 * An outage over real federation (hs1, hs2, hs3 in-process on loopback, one room with a member on each): hs2 is
 * stopped for 30 s while alice on hs1 sends 50 messages, one every 600 ms. Every message reaches hs3 while hs2 is
 * down (a dead server holds up no other destination: hs1's queues are per destination); once hs2 is back, hs1's
 * retries deliver all 50 to it, in order in bob's timeline, although hs1 keeps only 20 PDUs per destination in
 * memory: the 30 it dropped are read back from its timeline by the destination catch-up (federation/sender.ts). The latencies to hs3 before and during the outage are
 * printed (not asserted: the machines are shared).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { waitFor } from "./helpers/client.ts";
import { type FedServer, register, startFederation, type TestUser } from "./helpers/federation.ts";

const OUTAGE_MS = Number(process.env.AMI_OUTAGE_MS ?? 30_000);
const MESSAGES = 50;

describe("federation: hs2 down for 30 s while hs1 sends 50 messages", () => {
  let s: Record<string, FedServer>;
  let hs1: FedServer;
  let hs2: FedServer;
  let hs3: FedServer;
  const u: Record<string, { user: TestUser; srv: () => FedServer }> = {};
  let roomId: string;
  let txn = 0;

  const must = async (who: string, method: string, path: string, body?: unknown) => {
    const { user, srv } = u[who];
    const r = await fetch(`${srv().url}${path}`, {
      method,
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${user.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const b = await r.json();
    if (r.status !== 200) throw new Error(`${who} ${method} ${path}: ${r.status} ${JSON.stringify(b)}`);
    return b;
  };
  const room = () => `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;
  const say = async (body: string): Promise<string> =>
    (await must("alice", "PUT", `${room()}/send/m.room.message/o${++txn}`, { msgtype: "m.text", body })).event_id;
  /** In `srv`'s timeline (not an outlier). */
  const has = async (srv: FedServer, id: string) => {
    const [e] = await srv.hs.store.dag.getDagEvents([id]);
    return e !== undefined && e.stream !== null;
  };
  /** Send one message; ms until hs3 has it (polled every 5 ms, up to 10 s: far less than the outage). */
  const timedToHs3 = async (body: string) => {
    const t0 = performance.now();
    const id = await say(body);
    await waitFor(`${body} at hs3`, () => has(hs3, id), 10_000, 5);
    return { id, ms: performance.now() - t0 };
  };
  const pct = (xs: number[], p: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

  before(async () => {
    s = await startFederation(["hs1.test", "hs2.test", "hs3.test"], {
      federation: { retryInitialMs: 500, retryMaxMs: 2000, requestTimeoutMs: 3000 },
      // hs1 holds at most 20 PDUs per destination: the other 30 come back through the destination catch-up.
      matrix: { "hs1.test": { federation: { maxQueuedPdus: 20 } } },
    });
    hs1 = s["hs1.test"];
    hs2 = s["hs2.test"];
    hs3 = s["hs3.test"];
    for (const [name, srv] of [
      ["alice", "hs1.test"],
      ["bob", "hs2.test"],
      ["carol", "hs3.test"],
    ] as const)
      u[name] = { user: await register(s[srv].url, name), srv: () => s[srv] };
    roomId = (await must("alice", "POST", "/_matrix/client/v3/createRoom", { preset: "public_chat" })).room_id;
    for (const who of ["bob", "carol"])
      await must(who, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}?via=hs1.test`, {});
    const last = await say("everyone here");
    for (const srv of [hs2, hs3]) await waitFor(`${srv.name} in the room`, () => has(srv, last), 30_000, 20);
  });

  after(async () => {
    for (const h of Object.values(s ?? {})) await h.dispose();
  });

  test("all 50 reach hs3 while hs2 is down, and hs2 after it is back, in order", async () => {
    const baseline: number[] = [];
    for (let i = 0; i < 5; i++) baseline.push((await timedToHs3(`before ${i}`)).ms);

    await hs2.stop();
    const down = Date.now();
    const sent: string[] = [];
    const during: number[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      const { id, ms } = await timedToHs3(`during ${i}`);
      sent.push(id);
      during.push(ms);
      // Spread over the outage: the last one leaves ~600 ms before hs2 returns.
      const next = down + ((i + 1) * OUTAGE_MS) / MESSAGES;
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    }
    // hs1 has been failing to reach hs2 all along (not merely slow): its transactions failed and it backs off.
    const st = (await hs1.hs.federation.sender.status()).find((d) => d.destination === "hs2.test");
    assert.ok(st && st.failures >= 1, `hs2's queue: ${JSON.stringify(st)}`);
    // 20 queued plus the transaction held for retry; the rest dropped from memory (still owed in the store).
    assert.equal(st.queuedPdus + st.dropped, MESSAGES, JSON.stringify(st));
    assert.ok(st.queuedPdus <= 21 && st.dropped >= MESSAGES - 21, JSON.stringify(st));
    assert.equal(hs2.running, null, "hs2 was down for every one of them");
    await new Promise((r) => setTimeout(r, Math.max(0, down + OUTAGE_MS - Date.now())));
    await hs2.start();
    const back = Date.now();

    await waitFor(
      "hs2 to have all 50",
      async () => (await Promise.all(sent.map((id) => has(hs2, id)))).every(Boolean),
      20_000,
      20,
    );
    const recovered = Date.now() - back;
    const m = await must("bob", "GET", `${room()}/messages?dir=b&limit=${MESSAGES + 10}`);
    const timeline = (m.chunk as any[])
      .filter((e) => e.type === "m.room.message" && String(e.content.body).startsWith("during "))
      .map((e) => e.event_id)
      .reverse();
    assert.deepEqual(timeline, sent, "all 50 in bob's timeline, in the order sent");
    const healed = (await hs1.hs.federation.sender.status()).find((d) => d.destination === "hs2.test");
    assert.equal(healed?.failures, 0);
    console.log(
      `# outage: hs1 -> hs3 latency before p50 ${pct(baseline, 0.5).toFixed(1)} ms; while hs2 was down p50 ${pct(during, 0.5).toFixed(1)} ms, p90 ${pct(during, 0.9).toFixed(1)} ms, max ${Math.max(...during).toFixed(1)} ms; hs2 had all 50 ${recovered} ms after it was back`,
    );
  });
});
