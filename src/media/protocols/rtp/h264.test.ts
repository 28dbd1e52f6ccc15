import assert from "node:assert/strict";
import { test } from "node:test";
import { avcConfigRecord, avcCts, avccNals, avcNaluFrame, splitAvcConfig } from "../webrtc/avc-tags.ts";
import { H264Depacketizer, packetizeH264 } from "./h264.ts";

const nal = (type: number, size: number) => {
  const b = Buffer.alloc(size, type);
  b[0] = 0x60 | type;
  return b;
};

/** RTP packets for units, as a sender would number them. */
function rtp(units: Buffer[][], mtu = 100) {
  let seq = 65530;
  return units.flatMap((u, i) =>
    packetizeH264(u, mtu).map((payload, k, all) => ({
      sequenceNumber: seq++ & 0xffff,
      timestamp: (0xfffffff0 + i * 3000) >>> 0,
      marker: k === all.length - 1,
      payload,
    })),
  );
}

test("packetize + depacketize: single NAL units and FU-A round trip across sequence and timestamp wraps", () => {
  const units = [[nal(7, 20), nal(8, 4), nal(5, 1000)], [nal(1, 50)], [nal(1, 333)]];
  const packets = rtp(units);
  assert.ok(packets.every((p) => p.payload.length <= 100));
  assert.equal(packets[2]?.payload[0], 0x60 | 28, "the IDR is fragmented (FU-A)");
  const d = new H264Depacketizer();
  const out = packets.flatMap((p) => d.push(p));
  assert.deepEqual(
    out.map((u) => u.nals),
    units,
  );
  assert.deepEqual(
    out.map((u) => u.timestamp),
    [0xfffffff0, (0xfffffff0 + 3000) >>> 0, (0xfffffff0 + 6000) >>> 0],
  );
});

test("depacketize: STAP-A; a lost fragment drops only its unit; duplicates are ignored", () => {
  const stap = Buffer.concat([Buffer.from([24, 0, 3]), nal(7, 3), Buffer.from([0, 2]), nal(8, 2)]);
  const d = new H264Depacketizer();
  assert.deepEqual(d.push({ sequenceNumber: 1, timestamp: 0, marker: false, payload: stap }), []);
  const [u] = d.push({ sequenceNumber: 2, timestamp: 0, marker: true, payload: nal(5, 10) });
  assert.deepEqual(u?.nals, [nal(7, 3), nal(8, 2), nal(5, 10)]);

  const frag = packetizeH264([nal(1, 500)], 100).map((payload, k, all) => ({
    sequenceNumber: 3 + k,
    timestamp: 3000,
    marker: k === all.length - 1,
    payload,
  }));
  const lossy = [...frag.slice(0, 2), ...frag.slice(3)];
  assert.deepEqual(
    lossy.flatMap((p) => d.push(p)),
    [],
  );
  assert.equal(d.dropped, 1);
  const next = { sequenceNumber: 3 + frag.length, timestamp: 6000, marker: true, payload: nal(1, 10) };
  assert.equal(d.push(next).length, 1);
  assert.deepEqual(d.push(next), [], "a retransmitted duplicate is ignored");
  assert.equal(d.late, 1);
});

test("AVC config record and AVCC samples round trip", () => {
  const sps = Buffer.from([0x67, 0x42, 0xc0, 0x0d, 1, 2, 3]);
  const pps = Buffer.from([0x68, 0xce, 0x0f]);
  const p = splitAvcConfig(avcConfigRecord(sps, pps));
  assert.deepEqual(p, { sps: [sps], pps: [pps], lengthSize: 4 });
  const f = avcNaluFrame(40, [nal(5, 9), nal(6, 3)], true, -80);
  assert.equal(f.keyframe, true);
  assert.equal(avcCts(f.data), -80);
  assert.deepEqual(avccNals(f.data.subarray(5), 4), [nal(5, 9), nal(6, 3)]);
});

test("an access unit that never ends (same timestamp, no marker) is given up past MAX_UNIT_BYTES, memory stays bounded", () => {
  const d = new H264Depacketizer();
  const fu = (start: boolean) => Buffer.concat([Buffer.from([0x7c, start ? 0x85 : 0x05]), Buffer.alloc(60_000)]);
  const single = Buffer.concat([Buffer.from([0x61]), Buffer.alloc(60_000)]);
  let seq = 0;
  const before = process.memoryUsage().arrayBuffers;
  // 2 x 600 MB of payload views under one timestamp: a fragmented NAL unit, then single NAL units.
  for (const payload of [fu(true), single]) {
    for (let i = 0; i < 10_000; i++) {
      const p = i === 0 ? payload : payload === single ? single : fu(false);
      assert.deepEqual(d.push({ sequenceNumber: seq++ & 0xffff, timestamp: 7, marker: false, payload: p }), []);
    }
  }
  assert.ok(process.memoryUsage().arrayBuffers - before < 200 * 1024 * 1024, "payloads were not all kept");
  // The unit ends (marker): dropped, and the next one goes through.
  d.push({ sequenceNumber: seq++ & 0xffff, timestamp: 7, marker: true, payload: single });
  assert.equal(d.dropped, 1);
  const out = d.push({ sequenceNumber: seq++ & 0xffff, timestamp: 8, marker: true, payload: Buffer.from([0x65, 1]) });
  assert.equal(out.length, 1);
  assert.equal(out[0]?.nals.length, 1);
});

test("thousands of tiny NAL units under one timestamp are given up past MAX_UNIT_NALS", () => {
  const d = new H264Depacketizer();
  let seq = 0;
  for (let i = 0; i < 10_000; i++)
    d.push({ sequenceNumber: seq++, timestamp: 1, marker: false, payload: Buffer.from([0x61, 0]) });
  assert.deepEqual(d.push({ sequenceNumber: seq++, timestamp: 1, marker: true, payload: Buffer.from([0x61, 0]) }), []);
  assert.equal(d.dropped, 1);
});

test("a sender that restarts its sequence numbers further back is followed after a short run, not dropped for 32k packets", () => {
  const d = new H264Depacketizer();
  let units = 0;
  const unit = (seq: number, ts: number) =>
    (units += d.push({
      sequenceNumber: seq & 0xffff,
      timestamp: ts,
      marker: true,
      payload: Buffer.from([0x65, 1]),
    }).length);
  for (let i = 0; i < 10; i++) unit(20_000 + i, i * 3000);
  assert.equal(units, 10);
  // Restarted at 100 (20,000 behind): a few are taken as late, then the new numbering is followed.
  for (let i = 0; i < 200; i++) unit(100 + i, 100_000 + i * 3000);
  assert.ok(units >= 10 + 200 - 64, `${units - 10} of 200 units after the restart`);
  // A late duplicate now and then is still ignored.
  const late = d.late;
  unit(250, 1);
  assert.equal(d.late, late + 1);
});
