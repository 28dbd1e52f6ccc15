import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeAll, encode } from "./amf0.ts";
import { ByteBudget } from "./budget.ts";
import { ChunkError, ChunkReader, ChunkWriter } from "./chunk.ts";

test("messages survive chunking at any read boundary, across a chunk size change", () => {
  const w = new ChunkWriter();
  const big = Buffer.alloc(10000, 7);
  const setSize = Buffer.alloc(4);
  setSize.writeUInt32BE(4096);
  const wire = Buffer.concat([
    w.write({ csid: 3, type: 20, streamId: 0, timestamp: 0, payload: encode("connect", 1, { app: "live" }) }),
    w.write({ csid: 2, type: 1, streamId: 0, timestamp: 0, payload: setSize }),
    (() => {
      w.chunkSize = 4096;
      return w.write({ csid: 7, type: 9, streamId: 1, timestamp: 0x1234567, payload: big });
    })(),
  ]);
  for (const step of [1, 7, 129, wire.length]) {
    const r = new ChunkReader();
    const got = [];
    for (let i = 0; i < wire.length; i += step) got.push(...r.push(wire.subarray(i, i + step)));
    assert.equal(got.length, 3, `step ${step}`);
    assert.deepEqual(decodeAll(got[0]?.payload as Buffer), ["connect", 1, { app: "live" }]);
    assert.equal(r.chunkSize, 4096);
    assert.equal(got[2]?.timestamp, 0x1234567, "extended timestamp");
    assert.deepEqual(got[2]?.payload, big);
  }
});

test("fmt 1-3 headers apply deltas; a chunk stream that starts without a type 0 header is rejected", () => {
  const r = new ChunkReader();
  // fmt 0: ts 100, len 2, type 8, stream 1; then fmt 2 (delta 20) and fmt 3 (same delta again).
  const m = r.push(
    Buffer.from([0x06, 0, 0, 100, 0, 0, 2, 8, 1, 0, 0, 0, 0xaf, 1, 0x86, 0, 0, 20, 0xaf, 1, 0xc6, 0xaf, 1]),
  );
  assert.deepEqual(
    m.map((x) => x.timestamp),
    [100, 120, 140],
  );
  assert.throws(() => new ChunkReader().push(Buffer.from([0xc5, 1, 2])), ChunkError);
  assert.throws(
    () => new ChunkReader({ maxMessage: 100 }).push(Buffer.from([0x06, 0, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0])),
    ChunkError,
  );
});

test("reads of random sizes into one reused buffer (a chunk split over reads is carried without copying the whole read)", () => {
  const w = new ChunkWriter();
  w.chunkSize = 4096;
  const setSize = Buffer.alloc(4);
  setSize.writeUInt32BE(4096);
  const sent = Array.from({ length: 60 }, (_, i) => Buffer.alloc(1 + ((i * 7919) % 30000), i & 0xff));
  const wire = Buffer.concat([
    new ChunkWriter().write({ csid: 2, type: 1, streamId: 0, timestamp: 0, payload: setSize }),
    ...sent.map((p, i) =>
      w.write({ csid: 6 + (i % 2), type: 9 - (i % 2), streamId: 1, timestamp: i * 20, payload: p }),
    ),
  ]);
  let seed = 1;
  const rand = () => {
    seed = (seed * 48271) % 0x7fffffff;
    return seed;
  };
  const shared = Buffer.alloc(70000);
  for (let run = 0; run < 5; run++) {
    const r = new ChunkReader();
    const got = [];
    for (let i = 0; i < wire.length; ) {
      const n = 1 + (rand() % (run === 0 ? 20 : 70000));
      // Like the socket (servers/rtmp/read.ts): every read lands in one reused buffer, scribbled over after.
      const len = wire.copy(shared, 0, i, i + n);
      got.push(...r.push(shared.subarray(0, len)));
      shared.fill(0xee);
      i += n;
    }
    assert.equal(got.length, sent.length + 1, `run ${run}`);
    got.slice(1).forEach((m, i) => {
      assert.equal(m.timestamp, i * 20);
      assert.ok(m.payload.equals(sent[i] as Buffer), `message ${i}`);
    });
  }
});

/** A type 0 chunk header on `csid` declaring a message of `length` bytes, followed by `body` bytes of it. */
function partial(csid: number, length: number, body: number): Buffer {
  const h = Buffer.from([csid, 0, 0, 0, length >> 16, (length >> 8) & 0xff, length & 0xff, 9, 1, 0, 0, 0]);
  return Buffer.concat([h, Buffer.alloc(body)]);
}

test("partial messages are charged to the connection's limit and the shared budget, and released", () => {
  const shared = new ByteBudget(1000);
  const a = new ChunkReader({ maxHeld: 600, shared });
  const b = new ChunkReader({ maxHeld: 600, shared });
  // Small messages are allocated whole at their first chunk: the declared length is what they hold.
  a.push(partial(4, 500, 128));
  assert.equal(a.held, 500);
  assert.throws(() => a.push(partial(5, 200, 128)), /more than 600 bytes on this connection/);
  b.push(partial(4, 400, 128));
  assert.equal(shared.used, 900);
  assert.throws(() => b.push(partial(5, 200, 128)), /all connections .* more than 1000 bytes/);
  // A completed message is no longer held (type 3 continuation chunks of csid 4: 128 + 128 + 16 bytes more).
  const rest = [0xc4, 128, 0xc4, 128, 0xc4, 16].flatMap((x, i) => (i % 2 ? Array(x).fill(0) : [x]));
  assert.equal(b.push(Buffer.from(rest)).length, 1);
  assert.equal(b.held, 0);
  assert.equal(shared.used, 500);
  a.release();
  b.release();
  assert.equal(shared.used, 0);
  assert.equal(a.held, 0);
});

test("a declared length over maxMessage is refused before any byte of it arrives; large messages count as received", () => {
  assert.throws(() => new ChunkReader({ maxMessage: 64 * 1024 }).push(partial(4, 65 * 1024, 0)), /exceeds the limit/);
  const r = new ChunkReader({ maxHeld: 600 * 1024 });
  r.push(Buffer.concat([Buffer.from([0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 1, 0, 0])])); // chunk size 65536
  r.push(partial(4, 1024 * 1024, 65536));
  assert.equal(r.held, 256 * 1024, "a 1 MiB message holds the 256 KiB block its first bytes are in, not 1 MiB");
  r.push(Buffer.alloc(1));
  assert.ok(r.held > 256 * 1024, "the next chunk's first byte is carried");
  r.release();
  assert.equal(r.held, 0);
});

test("a full shared budget evicts the reader holding the most, not a small one asking", () => {
  const shared = new ByteBudget(800);
  const evicted: string[] = [];
  const big = new ChunkReader({ maxHeld: 700, shared, onEvict: (why) => evicted.push(why) });
  const small = new ChunkReader({ maxHeld: 700, shared });
  big.push(partial(4, 600, 128));
  small.push(partial(4, 300, 128));
  assert.equal(evicted.length, 1);
  assert.match(evicted[0] as string, /held the most \(600 bytes\)/);
  assert.equal(big.held, 0);
  assert.equal(shared.used, 300);
  assert.equal(shared.readers.has(big), false);
});

test("large messages (above one block) arrive whole across reads, and hold nothing once delivered", () => {
  const w = new ChunkWriter();
  w.chunkSize = 4096;
  const setSize = Buffer.alloc(4);
  setSize.writeUInt32BE(4096);
  const big = Buffer.alloc(1024 * 1024 + 3);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  const wire = Buffer.concat([
    new ChunkWriter().write({ csid: 2, type: 1, streamId: 0, timestamp: 0, payload: setSize }),
    w.write({ csid: 7, type: 9, streamId: 1, timestamp: 40, payload: big }),
  ]);
  const shared = new ByteBudget(4 * 1024 * 1024);
  const r = new ChunkReader({ shared });
  const got = [];
  for (let i = 0; i < wire.length; i += 10_007) got.push(...r.push(wire.subarray(i, i + 10_007)));
  assert.equal(got.length, 2);
  assert.ok(got[1]?.payload.equals(big));
  assert.equal(r.held, shared.used);
  assert.ok(r.held < 32 * 1024, `only the carry buffer is held (${r.held})`);
});
