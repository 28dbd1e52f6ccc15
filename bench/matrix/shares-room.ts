/**
 * "Does this remote user share a room with one of our users?" — asked per incoming device-list / signing-key EDU
 * (federation/device-lists.ts `sharesRoom`). Same run, same store (SQLite), interleaved:
 * - baseline: the old way, every room the user is joined to, then every member of those rooms read into JS;
 * - now: `store.events.sharesRoomWithServer`, one indexed query stopping at the first shared room.
 * The remote user is in ROOMS rooms of MEMBERS members each (other remote users); our one local user is in the last
 * room only (the old way's worst case reads all of them).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serverNameOf } from "../../src/matrix/events/ids.ts";
import { member, room } from "../../src/matrix/store/conformance/helpers.ts";
import { openStore } from "../../src/matrix/store/open.ts";
import type { Store } from "../../src/matrix/store/types.ts";
import { type BenchResult, percentile, round, runIfMain } from "./lib.ts";

const ROOMS = Number(process.env.BENCH_ROOMS ?? 50);
const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 200);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const USER = "@r:remote.test";

async function oldWay(s: Store, userId: string, local: string): Promise<boolean> {
  const rooms = (await s.events.getRoomsForUser(userId)).filter((m) => m.membership === "join");
  if (rooms.length === 0) return false;
  for (const members of (await s.events.getMembersOfRooms(rooms.map((r) => r.roomId))).values())
    for (const m of members) if (m.membership === "join" && serverNameOf(m.userId) === local) return true;
  return false;
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "ami-bench-shares-"));
  const s = await openStore(`sqlite:${join(dir, "hs.db")}`, dir);
  try {
    let stream = 0;
    for (let r = 0; r < ROOMS; r++) {
      const roomId = `!r${r}:hs`;
      await s.rooms.createRoom(room(roomId));
      const evs = [member(++stream, roomId, USER, "join")];
      for (let m = 0; m < MEMBERS; m++) evs.push(member(++stream, roomId, `@m${m}:other${m % 7}.test`, "join"));
      if (r === ROOMS - 1) evs.push(member(++stream, roomId, "@me:hs", "join"));
      await s.events.persistEvents(evs);
    }
    if (!(await oldWay(s, USER, "hs")) || !(await s.events.sharesRoomWithServer(USER, "hs")))
      throw new Error("bench: both ways must say the user shares a room");
    const before: number[] = [];
    const after: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      let t = process.hrtime.bigint();
      await oldWay(s, USER, "hs");
      before.push(Number(process.hrtime.bigint() - t) / 1000);
      t = process.hrtime.bigint();
      await s.events.sharesRoomWithServer(USER, "hs");
      after.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    const base = `old way (rooms + all members) p50 ${round(percentile(before, 50))} µs, p99 ${round(percentile(before, 99))} µs`;
    return [
      {
        bench: "shares-room",
        metric: `p50 per EDU check (${ROOMS} rooms × ${MEMBERS} members, SQLite)`,
        value: round(percentile(after, 50)),
        unit: "µs",
        baseline: base,
        target: "",
        met: null,
      },
      {
        bench: "shares-room",
        metric: "p99 per EDU check",
        value: round(percentile(after, 99)),
        unit: "µs",
        baseline: base,
        target: "",
        met: null,
      },
    ];
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await runIfMain(import.meta, run);
