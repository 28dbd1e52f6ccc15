/**
 * Test helpers shared by the fMP4 tests: real ffmpeg-encoded clips as hub frames, and the muxer's output for
 * them (init segments and moof + mdat fragments).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import type { Frame } from "../../frame.ts";
import { FlvDemuxer } from "../flv/demux.ts";
import { audioFrame, TAG_AUDIO, TAG_VIDEO, videoFrame } from "../flv/tag.ts";
import { CmafMuxer } from "./muxer.ts";

/** Hub frames of an ffmpeg-encoded FLV clip. */
export function encodeFlv(args: string[]): Frame[] {
  const r = spawnSync("ffmpeg", ["-hide_banner", "-loglevel", "error", ...args, "-f", "flv", "pipe:1"], {
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, String(r.stderr));
  const frames: Frame[] = [];
  for (const t of new FlvDemuxer().push(r.stdout)) {
    if (t.type === TAG_VIDEO) frames.push(videoFrame(t.timestamp, t.data));
    else if (t.type === TAG_AUDIO) frames.push(audioFrame(t.timestamp, t.data));
  }
  return frames;
}

export interface Output {
  inits: Buffer[];
  fragments: { moof: Buffer; mdat: Buffer }[];
  restarts: number;
}

export function mux(frames: Frame[], partSeconds = 0.2): Output {
  const out: Output = { inits: [], fragments: [], restarts: 0 };
  const m = new CmafMuxer(partSeconds, {
    init: (f, moov) => out.inits.push(Buffer.concat([f, moov])),
    fragment: (moof, mdat) => out.fragments.push({ moof, mdat }),
    restart: () => out.restarts++,
    skipped: (kind, reason) => assert.fail(`${kind} skipped: ${reason}`),
  });
  for (const f of frames) m.push(f);
  m.end();
  return out;
}
