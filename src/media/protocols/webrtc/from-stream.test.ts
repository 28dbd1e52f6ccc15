import assert from "node:assert/strict";
import { test } from "node:test";
import { Hub } from "../../hub.ts";
import { ViewerClock } from "./av-sync.ts";
import { avcConfigFrame, avcConfigRecord, avcNaluFrame } from "./avc-tags.ts";
import { type Resync, streamToRtp } from "./from-stream.ts";

const sps = Buffer.from([0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8]);
const pps = Buffer.from([0x68, 0xce, 0x3c, 0x80]);
const tick = () => new Promise((r) => setTimeout(r, 5));

test("a viewer starts on the cached GOP packed before the live edge; a PLI resends it packed before the next frame", async () => {
  const hub = new Hub({ readerQueue: 64, gopCache: 64 });
  const s = hub.publish("t/gop", { protocol: "test", remote: "test", since: 0 });
  s.write(avcConfigFrame(0, avcConfigRecord(sps, pps)));
  let dts = 0;
  const put = (key: boolean) => {
    s.write(avcNaluFrame(dts, [Buffer.from([key ? 0x65 : 0x41, dts & 0xff])], key));
    dts += 40;
  };
  put(true);
  for (let i = 0; i < 5; i++) put(false);
  const reader = s.addReader("webrtc", "viewer", { fromKeyframe: true });
  const head = [];
  for (let f = reader.poll(); f; f = reader.poll()) head.push(f);
  const sent: { ts: number; idr: boolean }[] = [];
  const clock = new ViewerClock();
  const resync: Resync = { pending: false, gop: () => s.cachedGop(), sent: 0 };
  const sinks = {
    video: async (p: { payload: Buffer; timestamp: number; marker: boolean }) => {
      // Single NAL units here: the IDR is type 5 (after SPS/PPS in a STAP-A or alone).
      const types = p.payload[0] === 24 ? [0x65] : [p.payload[0] as number];
      if (p.marker) sent.push({ ts: p.timestamp, idr: types.some((t) => (t & 0x1f) === 5) });
    },
  };
  const done = streamToRtp(reader, clock, sinks, head, resync);
  await tick();
  put(false);
  put(false);
  await tick();
  resync.pending = true;
  put(false);
  await tick();
  s.end();
  await done;
  const steps = sent.map((x, i) => (i ? (x.ts - (sent[i - 1] as { ts: number }).ts) | 0 : 0));
  // 6 cached frames 1 tick apart (the newest at the live edge), 2 live 40 ms apart, then the 8 cached frames
  // again 1 tick apart ending 1 tick before the frame that follows them (40 ms after the last live one).
  assert.deepEqual(steps, [0, 1, 1, 1, 1, 1, 3600, 3600, 3592, 1, 1, 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(
    sent.map((x) => x.idr),
    [true, ...Array(7).fill(false), true, ...Array(8).fill(false)],
  );
  assert.equal(resync.sent, 1);
});
