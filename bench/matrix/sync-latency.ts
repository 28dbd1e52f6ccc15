/**
 * Delivery latency: alice sends (PUT /send), bob's pending /sync long-poll returns the event. Measured from
 * just before the send to the moment bob's sync response is read, over loopback, SQLite store. Baseline: the
 * round trip of a bare node:http server (own process) through the same client, measured in the same run.
 * Target: p50 <= 5 ms.
 */
import { enc, registerUser } from "../../test/e2e/helpers/client.ts";
import { ChildHomeserver } from "../../test/e2e/helpers/homeserver.ts";
import { BareServer, type BenchResult, HttpClient, percentile, round, roundTrips, runIfMain } from "./lib.ts";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 500);
const C = "/_matrix/client/v3";
/** A lean filter, as bots and most clients after the first sync use: the room's timeline, nothing else. */
const FILTER = JSON.stringify({
  presence: { types: [] },
  account_data: { types: [] },
  room: {
    timeline: { limit: 20 },
    ephemeral: { types: [] },
    account_data: { types: [] },
    state: { lazy_load_members: true },
  },
});

export async function run(): Promise<BenchResult[]> {
  const bare = await BareServer.start();
  const hs = await ChildHomeserver.start({ backend: "sqlite" });
  try {
    const baseClient = new HttpClient(bare.url);
    await roundTrips(baseClient, "/", 200); // warm-up
    const base = await roundTrips(baseClient, "/", SAMPLES);
    baseClient.close();

    const alice = await registerUser(hs.url, "benchalice");
    const bob = await registerUser(hs.url, "benchbob");
    const sender = new HttpClient(hs.url);
    const syncer = new HttpClient(hs.url);
    const roomId = (await sender.json("POST", `${C}/createRoom`, alice.accessToken, { preset: "public_chat" })).room_id;
    await syncer.json("POST", `${C}/join/${enc(roomId)}`, bob.accessToken, {});
    let since = (await syncer.json("GET", `${C}/sync?timeout=0&filter=${enc(FILTER)}`, bob.accessToken)).next_batch;

    const lat: number[] = [];
    for (let i = 0; i < SAMPLES + 50; i++) {
      const body = `ping ${i}`;
      // Bob's long-poll is in flight before the send starts; wait until it has reached the server.
      const poll = syncer.json(
        "GET",
        `${C}/sync?timeout=30000&filter=${enc(FILTER)}&since=${enc(since)}`,
        bob.accessToken,
      );
      await new Promise((r) => setTimeout(r, 3));
      const t0 = performance.now();
      const sent = sender.json("PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/b${i}`, alice.accessToken, {
        msgtype: "m.text",
        body,
      });
      let res = await poll;
      // A sync may return before our event (e.g. bob's own join); keep polling until it arrives.
      while (!(res.rooms?.join?.[roomId]?.timeline?.events ?? []).some((e: any) => e.content?.body === body)) {
        res = await syncer.json(
          "GET",
          `${C}/sync?timeout=30000&filter=${enc(FILTER)}&since=${enc(res.next_batch)}`,
          bob.accessToken,
        );
      }
      const t1 = performance.now();
      await sent;
      since = res.next_batch;
      if (i >= 50) lat.push(t1 - t0); // the first 50 warm up the JIT and the store
    }
    sender.close();
    syncer.close();
    const baseline = `bare node:http round trip p50 ${round(percentile(base, 50), 3)} ms / p99 ${round(percentile(base, 99), 3)} ms`;
    const p50 = round(percentile(lat, 50), 2);
    return [
      {
        bench: "send->/sync delivery",
        metric: "p50",
        value: p50,
        unit: "ms",
        baseline,
        target: "<= 5 ms",
        met: p50 <= 5,
      },
      {
        bench: "send->/sync delivery",
        metric: "p99",
        value: round(percentile(lat, 99), 2),
        unit: "ms",
        baseline,
        target: "",
        met: null,
      },
    ];
  } finally {
    await hs.dispose();
    await bare.stop();
  }
}

await runIfMain(import.meta, run);
