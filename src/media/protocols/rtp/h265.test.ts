import assert from "node:assert/strict";
import { test } from "node:test";
import { H265_AP, H265Depacketizer, packetizeH265 } from "./h265.ts";

/** An H.265 NAL unit of `type` (2-byte header, layer 0, tid 1) and `size` bytes. */
const nal = (type: number, size: number) => {
  const b = Buffer.alloc(size, type);
  b[0] = type << 1;
  b[1] = 1;
  return b;
};

const packets = (units: Buffer[][], mtu = 1200) => {
  let seq = 65530;
  return units.flatMap((u, i) =>
    packetizeH265(u, mtu).map((payload, k, all) => ({
      sequenceNumber: seq++ & 0xffff,
      timestamp: i * 3000,
      marker: k === all.length - 1,
      payload,
    })),
  );
};

test("single NAL units and FUs round trip, across a sequence number wrap", () => {
  const units = [[nal(32, 24), nal(33, 40), nal(34, 8), nal(19, 5000)], [nal(1, 3000)], [nal(1, 100)]];
  const d = new H265Depacketizer();
  const pk = packets(units);
  assert.ok(
    pk.some((p) => (p.payload[0] as number) >> 1 === 49),
    "large units are fragmented",
  );
  const out = pk.flatMap((p) => d.push(p));
  assert.equal(out.length, 3);
  for (const [i, u] of units.entries()) assert.deepEqual(out[i]?.nals, u);
  assert.equal(d.dropped, 0);
});

test("a lost FU drops its unit only", () => {
  const units = [[nal(19, 5000)], [nal(1, 200)]];
  const pk = packets(units);
  pk.splice(1, 1);
  const d = new H265Depacketizer();
  const out = pk.flatMap((p) => d.push(p));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]?.nals, [nal(1, 200)]);
  assert.equal(d.dropped, 1);
});

test("an aggregation packet (AP) gives its NAL units", () => {
  const a = nal(32, 10);
  const b = nal(33, 20);
  const len = (n: Buffer) => Buffer.from([n.length >> 8, n.length & 0xff]);
  const ap = Buffer.concat([Buffer.from([H265_AP << 1, 1]), len(a), a, len(b), b]);
  const out = new H265Depacketizer().push({ sequenceNumber: 1, timestamp: 0, marker: true, payload: ap });
  assert.deepEqual(out[0]?.nals, [a, b]);
});
