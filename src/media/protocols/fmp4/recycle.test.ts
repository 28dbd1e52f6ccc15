/**
 * The HLS packager's muxer reuses its slabs once the timeline has let go of their bytes (slab.ts): what the
 * timeline still lists, and what an answer has pinned, must never change underneath.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { handOut } from "../slab.ts";
import { CmafMuxer } from "./muxer.ts";
import { encodeFlv } from "./test-clips.ts";
import { CmafTimeline } from "./timeline.ts";

test("recycled slabs never overwrite listed segments or pinned bytes", () => {
  // Lossless 640x360: about 1.5 MB/s, so the 4 MiB slabs fill and are recycled many times in 20 s.
  const frames = encodeFlv([
    ...["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440"],
    ...["-t", "20", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "25", "-c:a", "aac"],
  ]);
  const t = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 3 });
  const muxer = new CmafMuxer(
    0.2,
    {
      init: (ftyp, moov) => t.setInit(ftyp, moov),
      fragment: (moof, mdat) => t.addFragment(moof, mdat),
      restart: () => t.restart(),
      skipped: (kind, reason) => assert.fail(`${kind} skipped: ${reason}`),
    },
    { recycle: true },
  );
  /** Each complete segment's bytes when it completed. */
  const copies = new Map<number, Buffer>();
  const slabs = new Set<ArrayBufferLike>();
  let reused = 0;
  // One answer pins a segment early and keeps it to the end; another segment's bytes are handed out.
  let pinned: { msn: number; data: Buffer; copy: Buffer } | undefined;
  let handed: { data: Buffer; copy: Buffer } | undefined;
  for (const f of frames) {
    muxer.push(f);
    for (const s of t.segments) {
      const data = t.pin(s);
      if (!data) continue;
      if (s.complete && !copies.has(s.msn)) {
        copies.set(s.msn, Buffer.from(data));
        if (slabs.has(data.buffer)) reused++;
        slabs.add(data.buffer);
      }
      if (s.complete) assert.ok(data.equals(copies.get(s.msn) as Buffer), `segment ${s.msn} changed`);
      if (s.complete && !pinned && s.msn === 2) pinned = { msn: s.msn, data, copy: Buffer.from(data) };
      else t.unpin(data);
      if (s.complete && !handed && s.msn === 14) {
        const d = s.data as Buffer;
        handOut(d);
        handed = { data: d, copy: Buffer.from(d) };
      }
    }
  }
  muxer.end();
  assert.ok(copies.size > 15, `only ${copies.size} segments`);
  assert.ok(reused > 0, "no slab was reused");
  assert.ok(pinned?.data.equals(pinned.copy), "a pinned segment changed");
  assert.ok(handed?.data.equals(handed.copy), "handed-out bytes changed");
  if (pinned) t.unpin(pinned.data);
});
