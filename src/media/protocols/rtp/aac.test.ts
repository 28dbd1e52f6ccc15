import assert from "node:assert/strict";
import { test } from "node:test";
import { AacDepacketizer, packetizeAac } from "./aac.ts";

test("one access unit per packet round trips (AU-headers-length 16, 13-bit size, index 0)", () => {
  const unit = Buffer.alloc(371, 7);
  const [p, more] = packetizeAac(unit, 1400);
  assert.ok(p && !more);
  assert.equal(p.readUInt16BE(0), 16);
  assert.equal(p.readUInt16BE(2) >> 3, 371);
  assert.deepEqual(new AacDepacketizer().push(p, 1000, true), [{ timestamp: 1000, unit }]);
});

test("several access units in one packet: each 1024 samples after the previous", () => {
  const u = [Buffer.alloc(10, 1), Buffer.alloc(300, 2), Buffer.alloc(5, 3)];
  const headers = Buffer.alloc(6);
  for (const [i, x] of u.entries()) headers.writeUInt16BE(x.length << 3, i * 2);
  const p = Buffer.concat([Buffer.from([0, 48]), headers, ...u]);
  const out = new AacDepacketizer().push(p, 0xfffffc00, true);
  assert.deepEqual(
    out.map((o) => [o.timestamp, o.unit.length]),
    [
      [0xfffffc00, 10],
      [0, 300],
      [1024, 5],
    ],
  );
});

test("a unit fragmented over packets is joined at the marker; a short or lying packet is dropped", () => {
  const unit = Buffer.alloc(3000, 9);
  const head = Buffer.from([0, 16, (3000 << 3) >> 8, (3000 << 3) & 0xff]);
  const d = new AacDepacketizer();
  assert.deepEqual(d.push(Buffer.concat([head, unit.subarray(0, 1400)]), 5, false), []);
  assert.deepEqual(d.push(Buffer.concat([head, unit.subarray(1400, 2800)]), 5, false), []);
  assert.deepEqual(d.push(Buffer.concat([head, unit.subarray(2800)]), 5, true), [{ timestamp: 5, unit }]);
  assert.deepEqual(d.push(Buffer.from([0]), 6, true), []);
  assert.deepEqual(d.push(Buffer.from([0, 16, 0xff, 0xf8, 1, 2]), 7, true), [], "size beyond the packet, marker set");
  assert.equal(d.dropped, 2);
});

test("AU header lengths an SDP can give that would read nothing (sizelength 0) are refused, not looped on", () => {
  assert.throws(() => new AacDepacketizer({ sizeLength: 0, indexLength: 0, indexDeltaLength: 0 }), /sizelength 0/);
  assert.throws(() => new AacDepacketizer({ sizeLength: 33, indexLength: 3, indexDeltaLength: 3 }));
});

test("fragments that never end (no marker, same timestamp) are dropped once past the announced size", () => {
  const d = new AacDepacketizer();
  const head = Buffer.from([0, 16, (3000 << 3) >> 8, (3000 << 3) & 0xff]);
  for (let i = 0; i < 10_000; i++) assert.deepEqual(d.push(Buffer.concat([head, Buffer.alloc(1000)]), 5, false), []);
  assert.equal(d.dropped, 2500, "every fourth 1000-byte fragment of a 3000-byte unit overflows it");
  // A size beyond what any AAC frame has (32-bit size length): dropped at once.
  const big = new AacDepacketizer({ sizeLength: 32, indexLength: 0, indexDeltaLength: 0 });
  const p = Buffer.concat([Buffer.from([0, 32, 0x7f, 0xff, 0xff, 0xff]), Buffer.alloc(100)]);
  assert.deepEqual(big.push(p, 1, false), []);
  assert.equal(big.dropped, 1);
});

test("units past the MTU are fragmented (RFC 3640 §3.2.3) and join again; over 8191 bytes none is made", () => {
  for (const size of [1, 1396, 1397, 3000, 8191]) {
    const unit = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7) & 0xff));
    const parts = packetizeAac(unit, 1400);
    assert.equal(parts.length, Math.ceil(size / 1396), `${size} bytes`);
    const d = new AacDepacketizer();
    const out = parts.flatMap((p, k) => {
      assert.ok(p.length <= 1400);
      assert.equal(p.readUInt16BE(2) >> 3, size, "every fragment's AU header gives the whole unit's size");
      return d.push(p, 90, k === parts.length - 1);
    });
    assert.deepEqual(out, [{ timestamp: 90, unit }], `${size} bytes round trip`);
    assert.equal(d.dropped, 0);
  }
  // 8192 bytes would read as 0 in 13 bits (the old packetizer sent that): nothing is sent instead.
  assert.deepEqual(packetizeAac(Buffer.alloc(8192)), []);
  assert.deepEqual(packetizeAac(Buffer.alloc(20_000), 1400), []);
});
