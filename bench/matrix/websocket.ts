/**
 * WebSocket event streaming (docs/matrix-websocket.md), homeserver in its own process, SQLite store:
 * - delivery latency: alice sends, bob's WebSocket frame with the event is read; in the same run and interleaved,
 *   the same over a pending /sync long-poll (carol, another room). Target: WebSocket p50 <= 2 ms.
 * - fan-out: a room with FANOUT members (default 1,000), each with a live WebSocket; time from just before one
 *   send until the last member has read the frame. Target <= 250 ms.
 * - memory per idle WebSocket: homeserver RSS delta over connecting the FANOUT streams, / FANOUT, after a forced
 *   full GC before and after (child runs with --expose-gc; admin-only POST /_ami/debug/gc); also shown: the
 *   same 3 s after connecting without GC, and the V8 heap delta after GC. Target <= 20 KB.
 * Baselines (same run): the bare node:http round trip; a bare `ws` server process broadcasting a same-size frame
 * to as many connections, and its RSS per connection. Every client runs in this process, so fan-out figures
 * include the clients' own parsing of FANOUT frames on the same cores (the baseline pays that too).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { registrationMac } from "../../src/matrix/client/admin.ts";
import { SyncStream, timelineEvents } from "../../src/matrix/websocket/client.ts";
import { enc, ok, registerUser, type Session } from "../../test/e2e/helpers/client.ts";
import { ChildHomeserver } from "../../test/e2e/helpers/homeserver.ts";
import {
  BareServer,
  type BenchResult,
  HttpClient,
  percentile,
  pool,
  round,
  roundTrips,
  rssOf,
  runIfMain,
} from "./lib.ts";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);
const FANOUT = Number(process.env.BENCH_FANOUT ?? 1000);
const ROUNDS = 5;
const C = "/_matrix/client/v3";
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SECRET = "websocket-bench-shared-secret";

/** A server admin (for POST /_ami/debug/gc), through the shared-secret registration. */
async function sharedSecretAdmin(url: string): Promise<Session> {
  const { nonce } = await ok(url, "GET", "/_synapse/admin/v1/register");
  const p = { nonce, username: "wsbenchadmin", password: "pw wsbenchadmin", admin: true };
  const j = await ok(url, "POST", "/_synapse/admin/v1/register", { body: { ...p, mac: registrationMac(SECRET, p) } });
  return { userId: j.user_id, accessToken: j.access_token, deviceId: j.device_id };
}

/** Full GC in the homeserver; its heap in use and RSS afterwards. */
async function gcFigures(url: string, admin: Session): Promise<{ heap: number; rss: number }> {
  const j = await ok(url, "POST", "/_ami/debug/gc", { token: admin.accessToken, body: {} });
  return { heap: j.heap_used_bytes, rss: j.rss_bytes };
}

export async function run(): Promise<BenchResult[]> {
  process.env.MALLOC_MMAP_THRESHOLD_ ??= "131072";
  const bare = await BareServer.start();
  const hs = await ChildHomeserver.start({
    backend: "sqlite",
    matrix: { registration: { sharedSecret: SECRET } },
    env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --expose-gc`.trim() },
  });
  try {
    const baseClient = new HttpClient(bare.url);
    await roundTrips(baseClient, "/", 200);
    const base = await roundTrips(baseClient, "/", SAMPLES);
    baseClient.close();
    const rtt = `bare node:http round trip p50 ${round(percentile(base, 50), 3)} ms / p99 ${round(percentile(base, 99), 3)} ms`;
    const rows = await latency(hs, rtt);
    rows.push(...(await fanout(hs)));
    return rows;
  } finally {
    await hs.dispose();
    await bare.stop();
  }
}

async function latency(hs: ChildHomeserver, baseline: string): Promise<BenchResult[]> {
  const [alice, bob, carol] = await Promise.all(["wsl_a", "wsl_b", "wsl_c"].map((u) => registerUser(hs.url, u)));
  const http = new HttpClient(hs.url);
  const poller = new HttpClient(hs.url);
  const wsRoom = (await http.json("POST", `${C}/createRoom`, alice.accessToken, { preset: "public_chat" })).room_id;
  const pollRoom = (await http.json("POST", `${C}/createRoom`, alice.accessToken, { preset: "public_chat" })).room_id;
  await http.json("POST", `${C}/join/${enc(wsRoom)}`, bob.accessToken, {});
  await http.json("POST", `${C}/join/${enc(pollRoom)}`, carol.accessToken, {});

  let waiting: { body: string; resolve: () => void } | null = null;
  const stream = new SyncStream(hs.url, {
    token: bob.accessToken,
    filter: FILTER,
    onSync(_nb, data) {
      if (waiting && timelineEvents(data, wsRoom).some((e) => e.content?.body === waiting?.body)) waiting.resolve();
    },
  });
  await stream.ready;
  let since = (await poller.json("GET", `${C}/sync?timeout=0&filter=${enc(FILTER)}`, carol.accessToken)).next_batch;
  const send = (room: string, i: number, body: string) =>
    http.json("PUT", `${C}/rooms/${enc(room)}/send/m.room.message/l${i}`, alice.accessToken, {
      msgtype: "m.text",
      body,
    });

  const ws: number[] = [];
  const lp: number[] = [];
  for (let i = 0; i < SAMPLES + 50; i++) {
    // WebSocket sample.
    const wsBody = `ws ${i}`;
    const arrived = new Promise<void>((resolve) => {
      waiting = { body: wsBody, resolve };
    });
    let t0 = performance.now();
    const sent = send(wsRoom, 2 * i, wsBody);
    await arrived;
    const wsMs = performance.now() - t0;
    await sent;
    // Long-poll sample: carol's /sync is pending before the send (as in bench/matrix/sync-latency.ts).
    const lpBody = `lp ${i}`;
    const path = (s: string) => `${C}/sync?timeout=30000&filter=${enc(FILTER)}&since=${enc(s)}`;
    const poll = poller.json("GET", path(since), carol.accessToken);
    await sleep(3);
    t0 = performance.now();
    const sent2 = send(pollRoom, 2 * i + 1, lpBody);
    let res = await poll;
    while (!(res.rooms?.join?.[pollRoom]?.timeline?.events ?? []).some((e: any) => e.content?.body === lpBody))
      res = await poller.json("GET", path(res.next_batch), carol.accessToken);
    const lpMs = performance.now() - t0;
    await sent2;
    since = res.next_batch;
    if (i >= 50) {
      ws.push(wsMs);
      lp.push(lpMs);
    }
  }
  await stream.close();
  http.close();
  poller.close();
  const p = (xs: number[], q: number) => round(percentile(xs, q), 2);
  const lpNote = `/sync long-poll, same run: p50 ${p(lp, 50)} ms / p99 ${p(lp, 99)} ms; ${baseline}`;
  return [
    {
      bench: "send → WebSocket delivery",
      metric: "p50",
      value: p(ws, 50),
      unit: "ms",
      baseline: lpNote,
      target: "<= 2 ms",
      met: p(ws, 50) <= 2,
    },
    {
      bench: "send → WebSocket delivery",
      metric: "p99",
      value: p(ws, 99),
      unit: "ms",
      baseline: "(same)",
      target: "",
      met: null,
    },
  ];
}

async function fanout(hs: ChildHomeserver): Promise<BenchResult[]> {
  const http = new HttpClient(hs.url, 32);
  const admin = await sharedSecretAdmin(hs.url);
  const owner = await registerUser(hs.url, "wsf_owner");
  const roomId = (await http.json("POST", `${C}/createRoom`, owner.accessToken, { preset: "public_chat" })).room_id;
  const users: Session[] = [];
  await pool(
    Array.from({ length: FANOUT }, (_, i) => i),
    8,
    async (i) => {
      const u = await registerUser(hs.url, `wsf_${i}`);
      await http.json("POST", `${C}/join/${enc(roomId)}`, u.accessToken, {});
      users.push(u);
    },
  );
  const since = (await http.json("GET", `${C}/sync?timeout=0&filter=${enc(FILTER)}`, owner.accessToken)).next_batch;
  await sleep(3000);
  const rss0 = hs.rssBytes();
  const gc0 = await gcFigures(hs.url, admin);

  let target = "";
  let arrivals: number[] = [];
  let frameBytes = 0;
  const streams: SyncStream[] = [];
  await pool(users, 32, async (u) => {
    const s = new SyncStream(hs.url, {
      token: u.accessToken,
      filter: FILTER,
      since,
      onSync(_nb, data) {
        if (target && timelineEvents(data, roomId).some((e) => e.content?.body === target)) {
          arrivals.push(performance.now());
          if (!frameBytes) frameBytes = JSON.stringify({ type: "sync", next_batch: _nb, data }).length;
        }
      },
    });
    await s.ready;
    streams.push(s);
  });
  await sleep(3000);
  const settled = (hs.rssBytes() - rss0) / FANOUT;
  const gc1 = await gcFigures(hs.url, admin);
  const perConn = (gc1.rss - gc0.rss) / FANOUT;
  const heapPerConn = (gc1.heap - gc0.heap) / FANOUT;

  const times: number[] = [];
  for (let r = 0; r <= ROUNDS; r++) {
    target = `fan ${r}`;
    arrivals = [];
    const t0 = performance.now();
    await http.json("PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/f${r}`, owner.accessToken, {
      msgtype: "m.text",
      body: target,
    });
    while (arrivals.length < FANOUT) await sleep(1);
    if (r > 0) times.push(Math.max(...arrivals) - t0);
    if (process.env.BENCH_VERBOSE) console.error(`fan-out round ${r}: ${round(Math.max(...arrivals) - t0, 1)} ms`);
    await sleep(300);
  }
  await Promise.all(streams.map((s) => s.close()));
  http.close();

  const bare = await bareWsFanout(frameBytes);
  const fan = round(percentile(times, 50), 1);
  const kb = round(perConn / 1024, 1);
  return [
    {
      bench: `fan-out to ${FANOUT} members' WebSockets`,
      metric: `last delivery, median of ${ROUNDS}`,
      value: fan,
      unit: "ms",
      baseline: `max of ${ROUNDS} ${round(Math.max(...times), 1)} ms; bare ws broadcast of a ${frameBytes}-byte frame: ${bare.fanMs} ms`,
      target: "<= 250 ms",
      met: fan <= 250,
    },
    {
      bench: `${FANOUT} idle WebSockets`,
      metric: "RSS per connection after GC",
      value: kb,
      unit: "KB",
      baseline: `3 s after connecting, no GC: ${round(settled / 1024, 1)} KB; V8 heap after GC: ${round(heapPerConn / 1024, 1)} KB; bare ws server: ${bare.kbPerConn} KB per connection`,
      target: "<= 20 KB",
      met: kb <= 20,
    },
  ];
}

/** The same fan-out and memory figures against a bare `ws` broadcast server in its own process. */
async function bareWsFanout(frameBytes: number): Promise<{ fanMs: number; kbPerConn: number }> {
  const entry = fileURLToPath(new URL("./bare-ws-server.ts", import.meta.url));
  const proc: ChildProcess = spawn(process.execPath, ["--max-semi-space-size=1", entry], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        const m = /LISTENING (\S+)\n/.exec(out);
        if (m) resolve(m[1]);
      });
      proc.once("exit", (c) => reject(new Error(`bare ws server exited (${c})`)));
    });
    await sleep(2000);
    const rss0 = rssOf(proc.pid!);
    let arrivals: number[] = [];
    let target = "";
    const conns: WebSocket[] = [];
    await pool(
      Array.from({ length: FANOUT }, (_, i) => i),
      32,
      async () => {
        const ws = new WebSocket(url.replace(/^http/, "ws"), { perMessageDeflate: false });
        ws.on("message", (raw) => {
          const f = JSON.parse(raw.toString());
          if (f.target === target) arrivals.push(performance.now());
        });
        await new Promise((r) => ws.once("open", r));
        conns.push(ws);
      },
    );
    await sleep(3000);
    const kbPerConn = round((rssOf(proc.pid!) - rss0) / FANOUT / 1024, 1);
    const http = new HttpClient(url);
    const times: number[] = [];
    for (let r = 0; r <= ROUNDS; r++) {
      target = `fan ${r}`;
      arrivals = [];
      const body = JSON.stringify({ target, pad: "p".repeat(Math.max(0, frameBytes - 40)) });
      const t0 = performance.now();
      await http.call("POST", "/broadcast", undefined, body);
      while (arrivals.length < FANOUT) await sleep(1);
      if (r > 0) times.push(Math.max(...arrivals) - t0);
    }
    http.close();
    for (const ws of conns) ws.terminate();
    return { fanMs: round(percentile(times, 50), 1), kbPerConn };
  } finally {
    proc.kill("SIGTERM");
  }
}

await runIfMain(import.meta, run);
