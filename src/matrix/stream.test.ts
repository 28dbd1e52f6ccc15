import assert from "node:assert/strict";
import { test } from "node:test";
import type { NewEvent } from "./store/types.ts";
import { StreamWriter } from "./stream.ts";

const ev = (id: string): Omit<NewEvent, "stream"> => ({
  eventId: id,
  roomId: "!r:hs",
  type: "m.room.message",
  stateKey: null,
  sender: "@a:hs",
  originServerTs: 1,
  depth: 1,
  pdu: {},
});

test("events queued together share one commit, in order, and get consecutive positions", async () => {
  const commits: string[][] = [];
  const w = new StreamWriter(
    10,
    () => {},
    async (evs) => void commits.push(evs.map((e) => `${e.eventId}@${e.stream}`)),
  );
  const positions = await Promise.all(["a", "b", "c"].map((id) => w.persistEvent(ev(id))));
  assert.deepEqual(positions, [11, 12, 13]);
  assert.deepEqual(commits, [["a@11", "b@12", "c@13"]]);
  assert.equal(w.current, 13);
});

test("writes and event batches keep stream order; current advances only after a commit", async () => {
  const log: string[] = [];
  const w = new StreamWriter(
    0,
    () => log.push(`advance ${w.current}`),
    async (evs) => {
      log.push(`commit ${evs.map((e) => e.stream).join(",")}`);
    },
  );
  const a = w.write(async (pos) => log.push(`fn ${pos}`));
  const b = w.persistEvent(ev("x"));
  const c = w.write(async (pos) => log.push(`fn ${pos}`));
  await Promise.all([a, b, c]);
  assert.deepEqual(log, ["fn 1", "advance 1", "commit 2", "advance 2", "fn 3", "advance 3"]);
});

test("a failing batch is retried event by event: only the bad event fails", async () => {
  const committed: string[] = [];
  const w = new StreamWriter(
    0,
    () => {},
    async (evs) => {
      if (evs.some((e) => e.eventId === "bad")) throw new Error("constraint");
      committed.push(...evs.map((e) => e.eventId));
    },
  );
  const results = await Promise.allSettled(["ok1", "bad", "ok2"].map((id) => w.persistEvent(ev(id))));
  assert.deepEqual(
    results.map((r) => r.status),
    ["fulfilled", "rejected", "fulfilled"],
  );
  assert.deepEqual(committed, ["ok1", "ok2"]);
  assert.equal(w.current, 3);
});

test("onWritten reports each committed position (event rows, null for other writes) before current advances", async () => {
  const seen: string[] = [];
  const w = new StreamWriter(
    0,
    () => seen.push(`advance ${w.current}`),
    async () => {},
  );
  const off = w.onWritten((pos, e) => seen.push(`${pos}:${e?.eventId ?? "write"}`));
  await Promise.all([w.persistEvent(ev("a")), w.persistEvent(ev("b"))]);
  await w.write(async () => {});
  await w.write(async () => Promise.reject(new Error("disk"))).catch(() => {});
  off();
  await w.persistEvent(ev("c"));
  assert.deepEqual(seen, ["1:a", "2:b", "advance 2", "3:write", "advance 3", "advance 4", "advance 5"]);
});

test("marks from the bus that are malformed are skipped; good ones still reach the listeners", () => {
  const w = new StreamWriter(
    5,
    () => {},
    async () => {},
  );
  const seen: Array<[number, string | undefined]> = [];
  w.onWritten((pos, _ev, _tag, room) => void seen.push([pos, room]));
  const junk = [null, 7, "x", { pos: "9", mark: "!a:hs" }, { pos: Number.NaN, mark: "!a:hs" }, { mark: "!a:hs" }];
  w.mark([
    ...(junk as unknown as Array<{ pos: number; mark: string }>),
    { pos: 3, mark: "!old:hs" },
    { pos: 8, mark: "!r:hs" },
  ]);
  assert.deepEqual(seen, [[8, "!r:hs"]]);
});
