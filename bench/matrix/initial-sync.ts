/**
 * Initial /sync (no `since`) for a user in 100 rooms with 100 messages each (plus each room's state events),
 * 5 members per room, lazy-loading members on and a 20-event timeline (what Element asks for). SQLite store.
 * Baseline, same run: a bare node:http server returning a body of the same size through the same client.
 * Target: <= 150 ms.
 */
import { enc, registerUser, type Session } from "../../test/e2e/helpers/client.ts";
import { type Backend, ChildHomeserver } from "../../test/e2e/helpers/homeserver.ts";
import { BareServer, type BenchResult, HttpClient, percentile, pool, round, roundTrips, runIfMain } from "./lib.ts";

const ROOMS = 100;
const EVENTS = 100;
const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const C = "/_matrix/client/v3";
const FILTER = JSON.stringify({ room: { state: { lazy_load_members: true }, timeline: { limit: 20 } } });

/** Fill `hs` with the scenario; returns the user whose sync is measured. */
export async function populate(hs: ChildHomeserver): Promise<Session> {
  const http = new HttpClient(hs.url, 64);
  const user = await registerUser(hs.url, "syncuser");
  const others = await Promise.all([0, 1, 2, 3].map((i) => registerUser(hs.url, `member${i}`)));
  const rooms: string[] = [];
  await pool(
    Array.from({ length: ROOMS }, (_, i) => i),
    10,
    async (i) => {
      const owner = others[i % others.length];
      const roomId = (
        await http.json("POST", `${C}/createRoom`, owner.accessToken, { preset: "public_chat", name: `room ${i}` })
      ).room_id;
      for (const m of [user, ...others])
        if (m !== owner) await http.json("POST", `${C}/join/${enc(roomId)}`, m.accessToken, {});
      rooms.push(roomId);
    },
  );
  const sends = rooms.flatMap((roomId, r) => Array.from({ length: EVENTS }, (_, i) => ({ roomId, r, i })));
  await pool(sends, 50, async ({ roomId, r, i }) => {
    const s = others[(r + i) % others.length];
    await http.json("PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/p${r}-${i}`, s.accessToken, {
      msgtype: "m.text",
      body: `message ${i} in room ${r}`,
    });
  });
  http.close();
  return user;
}

export async function measure(
  hs: ChildHomeserver,
  user: Session,
): Promise<{ times: number[]; bytes: number; rooms: number }> {
  const http = new HttpClient(hs.url);
  const path = `${C}/sync?filter=${enc(FILTER)}`;
  let bytes = 0;
  let rooms = 0;
  const times: number[] = [];
  for (let i = 0; i < RUNS + 3; i++) {
    const t = performance.now();
    const r = await http.call("GET", path, user.accessToken);
    const dt = performance.now() - t;
    if (r.status !== 200) throw new Error(`initial sync -> ${r.status} ${r.text.slice(0, 300)}`);
    bytes = r.text.length;
    rooms = Object.keys(JSON.parse(r.text).rooms?.join ?? {}).length;
    if (i >= 3) times.push(dt);
  }
  http.close();
  return { times, bytes, rooms };
}

export async function run(backend: Backend = "sqlite"): Promise<BenchResult[]> {
  const hs = await ChildHomeserver.start({ backend });
  try {
    const t0 = performance.now();
    const user = await populate(hs);
    console.error(
      `[initial-sync] populated ${ROOMS} rooms x ${EVENTS} events in ${round((performance.now() - t0) / 1000, 1)} s`,
    );
    const { times, bytes, rooms } = await measure(hs, user);
    if (rooms !== ROOMS) throw new Error(`initial sync returned ${rooms} joined rooms, expected ${ROOMS}`);
    const bare = await BareServer.start(bytes);
    const c = new HttpClient(bare.url);
    await roundTrips(c, "/", 5);
    const base = await roundTrips(c, "/", RUNS);
    c.close();
    await bare.stop();
    const p50 = round(percentile(times, 50), 1);
    const baseline = `bare node:http, same ${Math.round(bytes / 1024)} KiB body: p50 ${round(percentile(base, 50), 2)} ms`;
    return [
      {
        bench: `initial /sync 100x100, lazy (${backend})`,
        metric: "p50",
        value: p50,
        unit: "ms",
        baseline,
        target: "<= 150 ms",
        met: p50 <= 150,
      },
      {
        bench: `initial /sync 100x100, lazy (${backend})`,
        metric: "max",
        value: round(Math.max(...times), 1),
        unit: "ms",
        baseline,
        target: "",
        met: null,
      },
    ];
  } finally {
    await hs.dispose();
  }
}

await runIfMain(import.meta, () => run());
