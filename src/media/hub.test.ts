import assert from "node:assert/strict";
import { test } from "node:test";
import type { Frame } from "./frame.ts";
import { Hub } from "./hub.ts";

const video = (dts: number, keyframe: boolean): Frame => ({
  kind: "video",
  dts,
  data: Buffer.from([keyframe ? 0x17 : 0x27, 1, 0, 0, 0]),
  keyframe,
  config: false,
});

test("a second publisher on a busy path is refused; the path frees when the stream ends", () => {
  const hub = new Hub({ readerQueue: 4, gopCache: 100 });
  const s = hub.publish("live/a", { protocol: "rtmp", remote: "x", since: 0 });
  assert.throws(() => hub.publish("live/a", { protocol: "rtmp", remote: "y", since: 0 }), { code: "M_FORBIDDEN" });
  assert.throws(() => hub.publish("../etc", { protocol: "rtmp", remote: "y", since: 0 }), {
    code: "AMI_INVALID_INPUT",
  });
  s.end();
  assert.equal(hub.get("live/a"), undefined);
  hub.publish("live/a", { protocol: "rtmp", remote: "y", since: 0 });
});

test("a reader that does not read loses frames (counted), stays bounded, and resumes on a keyframe", async () => {
  const hub = new Hub({ readerQueue: 4, gopCache: 100 });
  const s = hub.publish("live/b", { protocol: "rtmp", remote: "x", since: 0 });
  const r = s.addReader("test", "slow");
  s.write(video(0, true));
  for (let i = 1; i < 10; i++) s.write(video(i * 33, false));
  assert.equal(r.queued, 4);
  assert.equal(r.framesDiscarded, 6);
  s.write(video(330, false)); // still waiting for a keyframe: dropped even though there is room later
  for (let i = 0; i < 4; i++) await r.next();
  s.write(video(363, false));
  assert.equal(r.queued, 0);
  s.write(video(396, true));
  assert.equal((await r.next())?.dts, 396);
  assert.equal(s.framesDiscarded, 8);
  s.end();
  assert.equal(await r.next(), undefined);
});

test("a late reader starts at the last keyframe (GOP cache)", async () => {
  const hub = new Hub({ readerQueue: 100, gopCache: 100 });
  const s = hub.publish("live/c", { protocol: "rtmp", remote: "x", since: 0 });
  s.write(video(0, true));
  s.write(video(33, false));
  s.write(video(66, true));
  s.write(video(99, false));
  const r = s.addReader("test", "late");
  assert.deepEqual([(await r.next())?.dts, (await r.next())?.dts], [66, 99]);
});
