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
