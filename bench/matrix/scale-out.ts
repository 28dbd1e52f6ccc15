/**
 * Homeserver scale-out (issue 13): persisted events/s with 100 senders (10 rooms, 10 senders each, spread over the
 * processes) on 1, 2 and 3 homeserver processes on the same PostgreSQL (target: 2 processes >= 1.6x one, on a
 * machine with the cores for it — the row says how many this one had); and send -> sync p50 with the sender on
 * worker A and the long-polling reader on worker B, against both on one process (target: <= 2x within one).
 * Baseline, same run: the single-process figures (matrix.workers = 1, today's path).
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { enc, registerUser, type Session } from "../../test/e2e/helpers/client.ts";
import { ChildHomeserver } from "../../test/e2e/helpers/homeserver.ts";
import { type BenchResult, HttpClient, percentile, pool, round, runIfMain } from "./lib.ts";

const SENDERS = 100;
const ROOMS = 10;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
/** Seconds of sending before the measured window (the processes' JIT warm-up). */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
/** Rounds of (1 process, 2 processes, 3 processes) measured one after the other, so each ratio is same-run. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
/** `BENCH_NO_THREE=1` skips the 3-process figure (a 2-core machine cannot show it anyway). */
const THREE = process.env.BENCH_NO_THREE !== "1";
/** `BENCH_NO_LATENCY=1` skips the send -> sync figures. */
const LATENCY = process.env.BENCH_NO_LATENCY !== "1";
const C = "/_matrix/client/v3";
const FILTER = enc(
  JSON.stringify({
    presence: { types: [] },
    account_data: { types: [] },
    room: { timeline: { limit: 20 }, ephemeral: { types: [] }, state: { lazy_load_members: true } },
  }),
);

/** `n` homeserver processes on one fresh PostgreSQL database (n = 1: a plain single process, no cluster). */
async function cluster(n: number): Promise<ChildHomeserver[]> {
  // `BENCH_WORKER_FLAGS`: extra node/V8 flags for the processes of a cluster (n > 1) only.
  const env =
    n > 1 && process.env.BENCH_WORKER_FLAGS ? { AMI_E2E_NODE_FLAGS: process.env.BENCH_WORKER_FLAGS } : undefined;
  const first = await ChildHomeserver.start({ backend: "postgres", matrix: { workers: n }, env });
  const rest = await Promise.all(Array.from({ length: n - 1 }, () => ChildHomeserver.start({ sharedWith: first })));
  return [first, ...rest];
}

async function dispose(hss: ChildHomeserver[]): Promise<void> {
  await Promise.all(hss.slice(1).map((h) => h.dispose()));
  await hss[0].dispose();
}

/** CPU seconds (user + system) a process used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Minor faults, user and system ticks, (non)voluntary context switches of a process's main thread, from /proc. */
function procStats(pid: number): number[] {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  const st = readFileSync(`/proc/${pid}/status`, "utf8");
  const g = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? 0);
  return [Number(f[7]), Number(f[11]), Number(f[12]), g("voluntary_ctxt_switches"), g("nonvoluntary_ctxt_switches")];
}

interface Rate {
  /** Events/s acknowledged. */
  rate: number;
  /** Homeserver CPU (all its processes) per event, in ms: what the figure costs, whatever the machine's load. */
  cpuMs: number;
}

/** Events/s acknowledged (200 = committed) by 100 senders, sender i talking to process i % n. */
async function throughput(n: number): Promise<Rate> {
  const hss = await cluster(n);
  const clients = hss.map((h) => new HttpClient(h.url, SENDERS / n + 10));
  try {
    const owner = await registerUser(hss[0].url, "so_owner");
    const rooms: string[] = [];
    for (let r = 0; r < ROOMS; r++)
      rooms.push(
        (await clients[0].json("POST", `${C}/createRoom`, owner.accessToken, { preset: "public_chat" })).room_id,
      );
    const senders: { s: Session; roomId: string; k: number }[] = [];
    await pool(
      Array.from({ length: SENDERS }, (_, i) => i),
      10,
      async (i) => {
        const k = i % n;
        const s = await registerUser(hss[k].url, `so_sender${i}`);
        const roomId = rooms[i % ROOMS];
        await clients[k].json("POST", `${C}/join/${enc(roomId)}`, s.accessToken, {});
        senders.push({ s, roomId, k });
      },
    );
    let counting = false;
    let stop = false;
    let sent = 0;
    const lanes = senders.map(async ({ s, roomId, k }, m) => {
      for (let i = 0; !stop; i++) {
        await clients[k].json("PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/s${m}-${i}`, s.accessToken, {
          msgtype: "m.text",
          body: `scale-out message ${i} from sender ${m}: the quick brown fox jumps over the lazy dog`,
        });
        if (counting && !stop) sent++;
      }
    });
    await new Promise((r) => setTimeout(r, WARMUP * 1000)); // warm-up
    counting = true;
    const cpu0 = hss.reduce((a, h) => a + cpuSeconds(h.pid), 0);
    const st0 = hss.map((h) => procStats(h.pid));
    const t0 = performance.now();
    const h0 = process.hrtime.bigint();
    // `BENCH_PERF=<dir>`: a `perf record` of the homeservers over the measured window (CPU samples, not wall clock).
    const perf = process.env.BENCH_PERF
      ? spawn(
          "perf",
          [
            "record",
            "-F",
            "999",
            "-p",
            hss.map((h) => h.pid).join(","),
            "-o",
            `${process.env.BENCH_PERF}/perf-${n}-${Date.now()}.data`,
            "--",
            "sleep",
            String(SECONDS),
          ],
          { stdio: "ignore" },
        )
      : null;
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = hss.reduce((a, h) => a + cpuSeconds(h.pid), 0) - cpu0;
    const counted = sent;
    if (perf) await new Promise((r) => perf.once("exit", r));
    const st1 = hss.map((h) => procStats(h.pid));
    // `BENCH_WINDOW_LOG=1`: per-event process figures, and the window (monotonic µs, the clock of `--cpu-prof`
    // samples) so a profile can be cut to it.
    if (process.env.BENCH_WINDOW_LOG) {
      const d = st1.map((s, i) => s.map((x, j) => x - st0[i][j])).reduce((a, s) => a.map((x, j) => x + s[j]));
      console.error(
        `STATS n=${n} per event: minflt ${(d[0] / counted).toFixed(1)} utime ${((d[1] * 10) / counted).toFixed(3)} stime ${((d[2] * 10) / counted).toFixed(3)} vcsw ${(d[3] / counted).toFixed(1)} nvcsw ${(d[4] / counted).toFixed(1)}`,
      );
    }
    if (process.env.BENCH_WINDOW_LOG)
      console.error(
        `WINDOW n=${n} pids=${hss.map((h) => h.pid).join(",")} t0=${h0 / 1000n} t1=${process.hrtime.bigint() / 1000n} events=${counted}`,
      );
    stop = true;
    await Promise.all(lanes);
    return { rate: counted / elapsed, cpuMs: (cpu * 1000) / Math.max(1, counted) };
  } catch (e) {
    // The homeservers' own account of a failure (their logs are not printed otherwise).
    for (const h of hss)
      for (const l of h.logLines.filter((x) => x.includes('"level":"error"')).slice(0, 5)) console.error(l);
    throw e;
  } finally {
    for (const c of clients) c.close();
    await dispose(hss);
  }
}

/** p50 ms from a send through `from` to the reader's pending /sync long-poll on `to` returning it. */
async function sendToSync(from: ChildHomeserver, to: ChildHomeserver, tag: string): Promise<number> {
  const alice = await registerUser(from.url, `so_lat_a_${tag}`);
  const bob = await registerUser(to.url, `so_lat_b_${tag}`);
  const sender = new HttpClient(from.url);
  const syncer = new HttpClient(to.url);
  try {
    const roomId = (await sender.json("POST", `${C}/createRoom`, alice.accessToken, { preset: "public_chat" })).room_id;
    await syncer.json("POST", `${C}/join/${enc(roomId)}`, bob.accessToken, {});
    let since = (await syncer.json("GET", `${C}/sync?timeout=0&filter=${FILTER}`, bob.accessToken)).next_batch;
    const lat: number[] = [];
    for (let i = 0; i < SAMPLES + 30; i++) {
      const body = `ping ${i}`;
      const poll = syncer.json("GET", `${C}/sync?timeout=30000&filter=${FILTER}&since=${enc(since)}`, bob.accessToken);
      await new Promise((r) => setTimeout(r, 3));
      const t0 = performance.now();
      const sent = sender.json("PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/l${i}`, alice.accessToken, {
        msgtype: "m.text",
        body,
      });
      let res = await poll;
      while (!(res.rooms?.join?.[roomId]?.timeline?.events ?? []).some((e: any) => e.content?.body === body))
        res = await syncer.json(
          "GET",
          `${C}/sync?timeout=30000&filter=${FILTER}&since=${enc(res.next_batch)}`,
          bob.accessToken,
        );
      const t1 = performance.now();
      await sent;
      since = res.next_batch;
      if (i >= 30) lat.push(t1 - t0);
    }
    return round(percentile(lat, 50), 2);
  } finally {
    sender.close();
    syncer.close();
  }
}

const loadNow = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");

export async function run(): Promise<BenchResult[]> {
  const cores = cpus().length;
  const rows: BenchResult[] = [];
  // Interleaved rounds: the machine's load drifts (other suites), so each ratio compares figures taken minutes apart
  // at most, and the rounds show the spread.
  for (let r = 1; r <= ROUNDS; r++) {
    const load = loadNow();
    const o = await throughput(1);
    const t = await throughput(2);
    const h = THREE ? await throughput(3) : null;
    const [one, two, three] = [o.rate, t.rate, h?.rate ?? null];
    const machine = `${cores} cores, loadavg ${load} -> ${loadNow()}`;
    const base1 = `round ${r}: 1 process (workers: 1): ${round(one, 0)} events/s, ${round(o.cpuMs, 2)} CPU ms/event; ${machine}`;
    rows.push(
      {
        bench: "scale-out",
        metric: `round ${r}: persisted events/s, 100 senders, 1 process (PostgreSQL)`,
        value: round(one, 0),
        unit: "events/s",
        baseline: `${round(o.cpuMs, 2)} homeserver CPU ms/event; ${machine}`,
        target: "",
        met: null,
      },
      {
        bench: "scale-out",
        metric: `round ${r}: persisted events/s, 100 senders, 2 processes`,
        value: round(two, 0),
        unit: "events/s",
        baseline: `${base1}; ratio ${round(two / one, 2)}x; 2 processes: ${round(t.cpuMs, 2)} CPU ms/event`,
        target: ">= 1.6x one process (with the cores for it)",
        met: two >= 1.6 * one,
      },
    );
    if (three !== null)
      rows.push({
        bench: "scale-out",
        metric: `round ${r}: persisted events/s, 100 senders, 3 processes`,
        value: round(three, 0),
        unit: "events/s",
        baseline: `${base1}; ratio ${round(three / one, 2)}x; 3 processes: ${round(h!.cpuMs, 2)} CPU ms/event`,
        target: "",
        met: null,
      });
  }
  if (!LATENCY) return rows;
  const single = await cluster(1);
  let within: number;
  try {
    within = await sendToSync(single[0], single[0], "one");
  } finally {
    await dispose(single);
  }
  const pair = await cluster(2);
  let across: number;
  let sameInCluster: number;
  try {
    across = await sendToSync(pair[0], pair[1], "across");
    sameInCluster = await sendToSync(pair[0], pair[0], "same");
  } finally {
    await dispose(pair);
  }
  rows.push({
    bench: "scale-out",
    metric: "send -> sync p50, sender on worker A, reader on worker B",
    value: across,
    unit: "ms",
    baseline: `both on one process (workers: 1): p50 ${within} ms; both on worker A of 2: p50 ${sameInCluster} ms`,
    target: "<= 2x within one process",
    met: across <= 2 * within,
  });
  return rows;
}

await runIfMain(import.meta, run);
