/**
 * An RTMP publisher's messages come from recycling slabs (conn.ts, slab.ts): a slab is reused once the hub's GOP
 * cache, the releasing readers and the muxer have let go of every frame carved from it. Whatever still holds a
 * frame (the GOP cache, a reader's queue, a consumer that has not released it, a reader that never says) must
 * see its bytes unchanged, and the muxer's output must be what the same frames give without recycling.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Frame } from "../../frame.ts";
import { Hub } from "../../hub.ts";
import { CmafMuxer } from "../fmp4/muxer.ts";
import { encodeFlv, mux } from "../fmp4/test-clips.ts";
import { release, Slab, slabCounts } from "../slab.ts";
import { ChunkReader, ChunkWriter } from "./chunk.ts";
import { CSID, MSG } from "./messages.ts";
import { rtmpToStream } from "./to-stream.ts";

test("recycled chunk reader slabs never change bytes a holder still has", () => {
  // Lossless 640x360 (about 0.5 MB/s) through 256 KiB slabs: they fill and come back many times.
  const frames = encodeFlv([
    ...["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440"],
    ...["-t", "12", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "25", "-c:a", "aac"],
  ]);
  const expected = mux(frames);

  const writer = new ChunkWriter();
  writer.chunkSize = 4096;
  const wire = Buffer.concat(
    frames.map((f) =>
      writer.write({
        csid: f.kind === "video" ? CSID.VIDEO : CSID.AUDIO,
        type: f.kind === "video" ? MSG.VIDEO : MSG.AUDIO,
        streamId: 1,
        timestamp: f.dts,
        payload: f.data,
      }),
    ),
  );
  const reader = new ChunkReader();
  reader.setChunkSize(4096);
  reader.useSlab(new Slab(256 * 1024, { recycle: true }));

  const hub = new Hub({ readerQueue: 100_000, gopCache: 1000 });
  const stream = hub.publish("live/recycle", { protocol: "rtmp", remote: "test", since: 0 });
  /** Every frame's bytes as written (a synchronous `frame` listener, as the hub allows). */
  const copies = new Map<Frame, Buffer>();
  stream.on("frame", (f) => copies.set(f, Buffer.from(f.data)));
  const unchanged = (f: Frame, who: string) => assert.ok(f.data.equals(copies.get(f) as Buffer), `${who}: changed`);

  // The packager's way: a releasing reader drained synchronously into a muxer, each frame released once pushed.
  const fragments: { moof: Buffer; mdat: Buffer }[] = [];
  const muxer = new CmafMuxer(0.2, {
    init: () => {},
    fragment: (moof, mdat) => fragments.push({ moof: Buffer.from(moof), mdat: Buffer.from(mdat) }),
    restart: () => assert.fail("restart"),
    skipped: (kind, reason) => assert.fail(`${kind} skipped: ${reason}`),
  });
  const packager = stream.addReader("hls", "packager", { releases: true });
  packager.listen(() => {
    for (let f = packager.poll(); f; f = packager.poll()) {
      muxer.push(f);
      release(f.data);
    }
  });

  const before = { ...slabCounts };
  let written = 0;
  /** A releasing consumer that holds what it took for a while before giving it back. */
  let late: { reader: ReturnType<typeof stream.addReader>; held: Frame[] } | undefined;
  /** A reader that never says when it is done: its frames' slabs are never reused. */
  let keeper: ReturnType<typeof stream.addReader> | undefined;
  const kept: Frame[] = [];
  let reusedBeforeKeeper = 0;
  let reusedWhenKeeperLeft = 0;
  for (let at = 0; at < wire.length; at += 65536) {
    for (const m of reader.push(wire.subarray(at, at + 65536))) {
      rtmpToStream(m, stream);
      release(m.payload);
      written++;
      if (written === 60) late = { reader: stream.addReader("test", "late", { releases: true }), held: [] };
      if (late) for (let f = late.reader.poll(); f; f = late.reader.poll()) late.held.push(f);
      if (late && late.held.length > 80) {
        // Everything it kept (the GOP cache's frames among them) is as written; then it lets go.
        for (const f of late.held) {
          unchanged(f, "late reader");
          release(f.data);
        }
        late.reader.close();
        late = undefined;
      }
      if (written === 300) {
        reusedBeforeKeeper = slabCounts.reused - before.reused;
        keeper = stream.addReader("test", "keeper");
      }
      if (written === 500 && keeper) {
        // It leaves, keeping what it took: those slabs stay out of the pool, later ones come back.
        for (let f = keeper.poll(); f; f = keeper.poll()) kept.push(f);
        keeper.close();
        reusedWhenKeeperLeft = slabCounts.reused - before.reused;
      }
    }
  }
  assert.ok(reusedBeforeKeeper > 0, "no slab was reused");
  assert.ok(slabCounts.reused - before.reused > reusedWhenKeeperLeft, "no slab was reused after the keeper left");
  assert.ok(kept.length > 150, `the keeper got ${kept.length} frames`);
  for (const f of kept) unchanged(f, "keeper");
  muxer.end();
  assert.equal(fragments.length, expected.fragments.length);
  fragments.forEach((g, i) => {
    const e = expected.fragments[i] as { moof: Buffer; mdat: Buffer };
    assert.ok(g.moof.equals(e.moof) && g.mdat.equals(e.mdat), `fragment ${i} differs from the one without recycling`);
  });
});
