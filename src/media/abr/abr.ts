/**
 * ABR ladders (media.paths.<glob>.abr): when a publisher starts on a path whose rule has a ladder, a Transcoder
 * publishes its renditions as `<path>/<name>`; this object keeps them per source path for `stream status`,
 * answers the master playlist, and tells read checks which source a rendition path belongs to.
 */
import { z } from "zod";
import type { MediaConfig } from "../../config.ts";
import type { Logger } from "../../core/logger.ts";
import { PathGlobs } from "../auth/auth.ts";
import type { Hub, MediaStream } from "../hub.ts";
import type { Outputs, PathOutput } from "../outputs.ts";
import type { VariantInfo } from "../protocols/hls/playlist.ts";
import { cachedEncoder, type EncoderChoice, type EncoderSetting } from "./encoders.ts";
import { bitsPerSecond, type Rung } from "./ladder.ts";
import { frameRate, type MasterVariant, masterPlaylist } from "./master.ts";
import { type Rendition, renditionStatusSchema, Transcoder } from "./transcoder.ts";

const encoderTrySchema = z.object({ kind: z.string(), codec: z.string(), ok: z.boolean(), reason: z.string() });

export const abrStatusSchema = z.object({
  /** The encoder in use and why the others were not (null while it is being detected). */
  encoder: z
    .object({
      kind: z.string(),
      codec: z.string(),
      ok: z.boolean(),
      error: z.string().nullable(),
      device: z.string().nullable(),
      tried: z.array(encoderTrySchema.extend({ device: z.string().optional() })),
    })
    .nullable(),
  /** ffmpeg runs that failed while the source was live (each retried with backoff). */
  restarts: z.number(),
  renditions: z.array(renditionStatusSchema),
});
export type AbrStatus = z.infer<typeof abrStatusSchema>;

export interface AbrOptions {
  hub: Hub;
  paths: MediaConfig["paths"];
  encoder: EncoderSetting;
  ffmpegPath: string;
  retryInitialMs: number;
  retryMaxMs: number;
  log: Logger;
}

/** A master playlist waits this long for a just-started rendition's first segment. */
const RENDITION_WAIT_MS = 8000;
/** Audio counted in a rendition's BANDWIDTH when it copies the source's (not measured yet). */
const COPIED_AUDIO_BPS = 128_000;
/** A ladder's status outlives its source's publisher this long (the ended stream's status still shows it). */
const KEEP_ENDED_MS = 10 * 60_000;

export class Abr {
  readonly #o: AbrOptions;
  readonly #ladders: PathGlobs<Rung[]>;
  readonly #bySource = new Map<string, Transcoder>();
  #closed = false;

  constructor(o: AbrOptions) {
    this.#o = o;
    const ladders: Record<string, Rung[]> = {};
    for (const [glob, rule] of Object.entries(o.paths)) ladders[glob] = rule.abr ?? [];
    this.#ladders = new PathGlobs(ladders);
    // Detected in the background at start, so the first publisher does not wait and status shows it early.
    if (Object.values(ladders).some((l) => l.length > 0)) void this.encoder();
    o.hub.on("publish", (s) => this.#onPublish(s));
  }

  encoder(): Promise<EncoderChoice> {
    return cachedEncoder(this.#o.encoder, this.#o.ffmpegPath);
  }

  /** The ladder of a source path ([]: remux only). Rendition paths never have one. */
  ladderFor(path: string): Rung[] {
    return this.sourceOf(path) ? [] : (this.#ladders.get(path) ?? []);
  }

  /** `live/cam/360p` -> `live/cam` when live/cam's ladder has a rung named 360p. */
  sourceOf(path: string): string | undefined {
    const i = path.lastIndexOf("/");
    if (i < 0) return undefined;
    const source = path.slice(0, i);
    const name = path.slice(i + 1);
    return (this.#ladders.get(source) ?? []).some((r) => r.name === name) ? source : undefined;
  }

  #onPublish(s: MediaStream): void {
    if (this.#closed || s.publisher.protocol === "abr") return;
    const ladder = this.ladderFor(s.path);
    if (ladder.length === 0) return;
    // Statuses of sources long gone are dropped when another publisher starts (the map stays small).
    for (const [path, old] of this.#bySource)
      if (old.source.endedAt !== undefined && Date.now() - old.source.endedAt > KEEP_ENDED_MS)
        this.#bySource.delete(path);
    const t = new Transcoder(s, ladder, { ...this.#o, encoder: () => this.encoder() });
    this.#bySource.set(s.path, t);
    this.#o.log.info("abr ladder", { path: s.path, rungs: ladder.map((r) => r.name) });
  }

  /** The ladder running (or last run) for a source path. */
  get(path: string): Transcoder | undefined {
    return this.#bySource.get(path);
  }

  status(path: string): AbrStatus | undefined {
    const t = this.#bySource.get(path);
    if (!t) return undefined;
    return { encoder: t.encoder, restarts: t.restarts, renditions: t.renditions.map((r) => r.status()) };
  }

  /** The master playlist of `out`: its own variant, then every rendition that is (or soon is) playable. */
  /** The live renditions of `out` with a listed segment; ones still starting are waited for (players read a master once). */
  readonly renditions = async (out: PathOutput, outputs: Outputs, signal: AbortSignal): Promise<Rendition[]> => {
    const t = this.#bySource.get(out.path);
    if (!t || t.source !== out.stream) return [];
    const ready = (r: Rendition) => !!r.stream && (outputs.get(r.path)?.packager.timeline.listed().length ?? 0) > 0;
    const starting = (r: Rendition) => !ready(r) && (r.state === "waiting" || r.state === "running");
    const end = Date.now() + RENDITION_WAIT_MS;
    while (t.renditions.some(starting) && Date.now() < end && !signal.aborted && !out.stream.ended)
      await new Promise((r) => setTimeout(r, 100));
    return t.renditions.filter(ready);
  };

  readonly master = async (
    out: PathOutput,
    outputs: Outputs,
    source: VariantInfo,
    signal: AbortSignal,
  ): Promise<string> => {
    const variants: MasterVariant[] = [{ ...source, uri: "stream.m3u8", frameRate: frameRate(out.stream) }];
    for (const r of await this.renditions(out, outputs, signal)) {
      if (!r.stream) continue;
      const f = r.stream.stats.figures();
      const audio = r.rung.audioBitrate ? bitsPerSecond(r.rung.audioBitrate) : f.audioCodec ? COPIED_AUDIO_BPS : 0;
      variants.push({
        uri: `${r.rung.name}/stream.m3u8`,
        bandwidth: Math.max(f.bitrateKbps * 1000, bitsPerSecond(r.rung.videoBitrate) + audio),
        codecs: [f.videoCodec, f.audioCodec].filter((c): c is string => !!c),
        width: f.width,
        height: f.height,
        frameRate: r.rung.fps ?? frameRate(out.stream),
      });
    }
    return masterPlaylist(variants);
  };

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#bySource.values()].map((t) => t.stop()));
    this.#bySource.clear();
  }
}
