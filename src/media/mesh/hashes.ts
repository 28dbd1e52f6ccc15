/**
 * `GET /<path>/mesh.json`: the SHA-256 of each listed segment (`seg<N>.m4s` as the server sends it), so a viewer can
 * check a segment a peer gave it before playing it. Each segment is hashed once, when first listed here, and the
 * hash lives as long as the segment object (a WeakMap: trimmed segments take theirs with them).
 */
import { createHash } from "node:crypto";
import type { CmafTimeline, Segment } from "../protocols/fmp4/timeline.ts";

const hashes = new WeakMap<Segment, string>();

export const MESH_MANIFEST = "mesh.json";

/** `{segments: {"<msn>": "<sha256 hex>"}}` of the complete segments the playlist lists. */
export function meshManifest(t: CmafTimeline): Buffer {
  const segments: Record<string, string> = {};
  for (const s of t.listed()) {
    let h = hashes.get(s);
    if (!h) {
      // Pinned while hashed: the bytes are the muxer's slab, reused once nothing holds them.
      const data = t.pin(s);
      if (!data) continue;
      try {
        h = createHash("sha256").update(data).digest("hex");
      } finally {
        t.unpin(data);
      }
      hashes.set(s, h);
    }
    segments[s.msn] = h;
  }
  return Buffer.from(JSON.stringify({ segments }));
}
