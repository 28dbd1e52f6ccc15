/**
 * Push latency: alice sends (PUT /send) to a room with bob, who has an http pusher; measured from just before the
 * send to the moment the push gateway (a node:http server in this process) has read the notification, over
 * loopback, SQLite store. Baseline, same run: a bare POST of a notification-sized body from this process to the
 * same gateway (fetch, as the homeserver posts). Target: p50 <= 10 ms.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { enc, registerUser } from "../../test/e2e/helpers/client.ts";
import { ChildHomeserver } from "../../test/e2e/helpers/homeserver.ts";
import { type BenchResult, HttpClient, percentile, round, runIfMain } from "./lib.ts";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);
const WARMUP = 30;
const C = "/_matrix/client/v3";
const NOTIFY = "/_matrix/push/v1/notify";

export async function run(): Promise<BenchResult[]> {
  /** Waiters by message body: resolved when the gateway reads a notification carrying it. */
  const waiting = new Map<string, () => void>();
  const gateway = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" }).end('{"rejected":[]}');
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        const key = body?.notification?.content?.body;
        if (typeof key === "string") waiting.get(key)?.();
      } catch {
        // the baseline's body; nothing waits on it
      }
    });
  });
  await new Promise<void>((r) => gateway.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}${NOTIFY}`;
  const hs = await ChildHomeserver.start({ backend: "sqlite" });
  try {
    const sample = JSON.stringify({
      notification: {
        event_id: "$x",
        room_id: "!r:localhost",
        type: "m.room.message",
        sender: "@benchalice:localhost",
        prio: "low",
        content: { msgtype: "m.text", body: "ping" },
        counts: { unread: 1 },
        devices: [{ app_id: "bench", pushkey: "k", pushkey_ts: 1, data: {}, tweaks: { highlight: false } }],
      },
    });
    const base: number[] = [];
    for (let i = 0; i < SAMPLES + WARMUP; i++) {
      const t0 = performance.now();
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: sample });
      await res.text();
      if (i >= WARMUP) base.push(performance.now() - t0);
    }

    const alice = await registerUser(hs.url, "benchalice");
    const bob = await registerUser(hs.url, "benchbob");
    const carol = await registerUser(hs.url, "benchcarol");
    const client = new HttpClient(hs.url);
    const roomId = (await client.json("POST", `${C}/createRoom`, alice.accessToken, { preset: "public_chat" })).room_id;
    await client.json("POST", `${C}/join/${enc(roomId)}`, bob.accessToken, {});
    await client.json("POST", `${C}/join/${enc(roomId)}`, carol.accessToken, {});
    await client.json("POST", `${C}/pushers/set`, bob.accessToken, {
      kind: "http",
      app_id: "org.example.bench",
      pushkey: "bench-key",
      app_display_name: "Bench",
      device_display_name: "Bench",
      lang: "en",
      data: { url },
    });

    const lat: number[] = [];
    for (let i = 0; i < SAMPLES + WARMUP; i++) {
      const body = `ping ${i}`;
      const pushed = new Promise<void>((resolve) => waiting.set(body, resolve));
      const t0 = performance.now();
      const sent = client.json("PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/p${i}`, alice.accessToken, {
        msgtype: "m.text",
        body,
      });
      await pushed;
      const t1 = performance.now();
      await sent;
      waiting.delete(body);
      if (i >= WARMUP) lat.push(t1 - t0);
    }
    client.close();
    const baseline = `bare POST to the same gateway p50 ${round(percentile(base, 50), 3)} ms / p99 ${round(percentile(base, 99), 3)} ms`;
    const p50 = round(percentile(lat, 50), 2);
    return [
      {
        bench: "send->push gateway",
        metric: "p50",
        value: p50,
        unit: "ms",
        baseline,
        target: "<= 10 ms",
        met: p50 <= 10,
      },
      {
        bench: "send->push gateway",
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
    gateway.closeAllConnections();
    await new Promise((r) => gateway.close(r));
  }
}

await runIfMain(import.meta, run);
