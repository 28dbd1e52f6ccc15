/**
 * The master playlist of a path with an ABR ladder (`/<path>/master.m3u8`): the remuxed source first, then each
 * live rendition's media playlist (`<name>/stream.m3u8`), each with BANDWIDTH, CODECS, RESOLUTION, FRAME-RATE.
 */
import type { MediaStream } from "../hub.ts";
import type { Outputs, PathOutput } from "../outputs.ts";
import { streamInfAttrs, type VariantInfo } from "../protocols/hls/playlist.ts";

export interface MasterVariant extends VariantInfo {
  uri: string;
  frameRate: number | null;
}

/** What the HTTP route asks for: the master playlist of `out` (whose own variant is `source`). */
export type MasterSource = (
  out: PathOutput,
  outputs: Outputs,
  source: VariantInfo,
  signal: AbortSignal,
) => Promise<string>;

/** The live renditions of a source (for `/<path>/master.mpd`): each one's hub path and rung name. */
export type RenditionsSource = (
  out: PathOutput,
  outputs: Outputs,
  signal: AbortSignal,
) => Promise<{ path: string; rung: { name: string } }[]>;

const rate = (n: number) => n.toFixed(3);

export function masterPlaylist(variants: MasterVariant[]): string {
  // No EXT-X-INDEPENDENT-SEGMENTS: see multivariantPlaylist.
  const lines = ["#EXTM3U", "#EXT-X-VERSION:9"];
  for (const v of variants) {
    const attrs = streamInfAttrs(v);
    if (v.frameRate) attrs.push(`FRAME-RATE=${rate(v.frameRate)}`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(",")}`, v.uri);
  }
  return `${lines.join("\n")}\n`;
}

/** The publisher's declared frame rate (RTMP onMetaData), else the measured one. */
export function frameRate(s: MediaStream): number | null {
  const declared = Number(s.metadata.framerate);
  if (Number.isFinite(declared) && declared > 0 && declared <= 240) return declared;
  const measured = s.stats.figures().fps;
  return measured > 0 ? Math.round(measured) : null;
}
