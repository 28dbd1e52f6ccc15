import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startInProcess } from "../../../test/e2e/helpers/homeserver.ts";

let running: Awaited<ReturnType<typeof startInProcess>>;
before(async () => {
  running = await startInProcess();
});
after(async () => {
  await running?.dispose();
});

test("typing: changedSince names the rooms changed after a serial; stopping is a change too", () => {
  const { typing } = running.hs;
  const s0 = typing.serial;
  typing.setTyping("!a:localhost", "@u:localhost", true, 30_000);
  const s1 = typing.serial;
  typing.setTyping("!b:localhost", "@u:localhost", true, 30_000);
  assert.deepEqual([...typing.changedSince(s0)].sort(), ["!a:localhost", "!b:localhost"]);
  assert.deepEqual([...typing.changedSince(s1)], ["!b:localhost"]);
  typing.setTyping("!a:localhost", "@u:localhost", false, 0);
  typing.setTyping("!b:localhost", "@u:localhost", false, 0);
  assert.deepEqual([...typing.changedSince(s1)].sort(), ["!a:localhost", "!b:localhost"]);
  assert.deepEqual(typing.typingIn("!a:localhost"), []);
});

test("typing: the change log is bounded; a serial older than what it remembers still gets every typing room", () => {
  const { typing } = running.hs;
  const old = typing.serial;
  typing.setTyping("!still:localhost", "@u:localhost", true, 30_000);
  // 20,000 rooms start and stop: far more than the log keeps.
  for (let i = 0; i < 20_000; i++) {
    typing.setTyping(`!r${i}:localhost`, "@u:localhost", true, 30_000);
    typing.setTyping(`!r${i}:localhost`, "@u:localhost", false, 0);
  }
  const recent = typing.serial;
  typing.setTyping("!r19999:localhost", "@v:localhost", true, 30_000);
  assert.deepEqual([...typing.changedSince(recent)], ["!r19999:localhost"]);
  const since = typing.changedSince(old);
  assert.ok(since.size <= 10_001, `remembered ${since.size} rooms`);
  assert.ok(since.has("!still:localhost"), "a room with someone typing is always included for an old serial");
  assert.ok(since.has("!r19999:localhost"));
  typing.setTyping("!still:localhost", "@u:localhost", false, 0);
  typing.setTyping("!r19999:localhost", "@v:localhost", false, 0);
});
