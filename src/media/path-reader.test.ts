import assert from "node:assert/strict";
import { test } from "node:test";
import type { Frame } from "./frame.ts";
import { Hub } from "./hub.ts";
import { PathReader } from "./path-reader.ts";

const frame = (kind: "video" | "audio", dts: number, o: { keyframe?: boolean; config?: boolean } = {}): Frame => ({
  kind,
  dts,
  data: Buffer.from([0x17, o.config ? 0 : 1, 0, 0, 0]),
  keyframe: o.keyframe ?? false,
  config: o.config ?? false,
});
const who = { protocol: "rtmp", remote: "x", since: 0 };
const opts = { protocol: "test", remote: "r", graceMs: 5000 };

async function take(r: PathReader, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = await r.next();
    assert.ok(t, "a frame");
    out.push(`${t.frame.kind[0]}${t.frame.config ? "c" : ""}@${t.ts}`);
  }
  return out;
}

test("a reader goes on with the next publisher: its headers, video from its keyframe, time continuing", async () => {
  const hub = new Hub({ readerQueue: 64, gopCache: 100 });
  const a = hub.publish("live/p", who);
  a.write(frame("video", 0, { config: true }));
  a.write(frame("video", 1000, { keyframe: true }));
  a.write(frame("audio", 1010));
  a.write(frame("video", 1040));
  const r = new PathReader(hub, a, opts);
  assert.deepEqual(await take(r, 4), ["vc@0", "v@0", "a@10", "v@40"]);
  a.end();
  const next = take(r, 4);
  const b = hub.publish("live/p", who);
  b.write(frame("video", 0, { config: true }));
  b.write(frame("video", 20)); // not a keyframe: skipped
  b.write(frame("video", 80, { keyframe: true }));
  b.write(frame("audio", 70)); // before the new base: held at the join, never earlier
  b.write(frame("video", 120));
  assert.deepEqual(await next, ["vc@40", "v@80", "a@80", "v@120"]);
  assert.equal(r.publishers, 2);
  r.close();
  assert.equal(await r.next(), undefined);
  assert.equal(b.readers.size, 0, "closing releases the hub reader");
});

test("no publisher back within the grace: the reader ends; close ends a wait at once", async () => {
  const hub = new Hub({ readerQueue: 64, gopCache: 100 });
  const a = hub.publish("live/q", who);
  const r = new PathReader(hub, a, { ...opts, graceMs: 50 });
  a.end();
  assert.equal(await r.next(), undefined);
  const b = hub.publish("live/q", who);
  const waiting = new PathReader(hub, b, opts);
  b.end();
  const pending = waiting.next();
  waiting.close();
  assert.equal(await pending, undefined);
});
