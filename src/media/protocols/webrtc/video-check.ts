/**
 * Whether a path's H.264 (or H.265) can go to WebRTC viewers as it is. WebRTC carries no composition time: a browser gets
 * frames in decode order and renders them as they arrive, so B-frames (frames out of presentation order, what
 * libx264 sends by default from ffmpeg and OBS) play at a few frames per second; and a browser's WebRTC H.264
 * decoder takes 8-bit 4:2:0 only (no High 10, High 4:2:2, High 4:4:4). An H.265 path is re-encoded too: browsers'
 * WebRTC stacks negotiate H.264 (Chromium offers H.265 only with a hardware decoder, and then it is passed through
 * when it has no B-frames: `verdict({ h265: true })`). Such a path is re-encoded for WebRTC viewers
 * (video-transcode.ts); anything else is passed through.
 *
 * The check watches every frame the path's publisher writes (a few bytes read per video frame): reordering is
 * seen on the first frames of a B-frame encoder (x264's IDR already carries a composition offset), so the
 * verdict is "passthrough" only after PASSTHROUGH_AFTER frames in presentation order.
 */
import type { Frame } from "../../frame.ts";
import type { MediaStream } from "../../hub.ts";
import { avcCts, FOURCC_HEVC, isAvcTag, parseVideoTag } from "../flv/ex-video.ts";
import { CODEC_AVC, videoCodecId } from "../flv/tag.ts";

export type WebRtcVideoMode = "passthrough" | "reencode" | "pending";

export interface WebRtcVideoVerdict {
  mode: WebRtcVideoMode;
  /** Why, in words for `stream status`. */
  reason: string;
}

/** Video frames in presentation order before a path counts as free of B-frames. */
export const PASSTHROUGH_AFTER = 30;

/** profile_idc values a browser's WebRTC H.264 decoder does not take (ITU-T H.264 A.2). */
const UNDECODABLE: Record<number, string> = {
  110: "High 10 profile (10-bit)",
  122: "High 4:2:2 profile",
  244: "High 4:4:4 Predictive profile",
  44: "CAVLC 4:4:4 Intra profile",
};

/** The profile (profile_idc) of an AVC sequence header frame, or undefined when it is not one. */
export function avcProfile(config: Frame | undefined): number | undefined {
  if (config?.kind !== "video" || videoCodecId(config) !== CODEC_AVC) return undefined;
  const rec = config.data.subarray(5);
  return rec[0] === 1 && rec.length > 1 ? (rec[1] as number) : undefined;
}

export class VideoCheck {
  /** Coded video frames seen. */
  frames = 0;
  /** Frames shown before one sent earlier: B-frames. */
  reordered = 0;
  /** Largest composition time offset seen (ms). */
  maxCtsMs = 0;
  /** Presentation time (hub ms) of the latest video frame: where the live edge is. */
  lastPts: number | undefined;
  #maxPts = Number.NEGATIVE_INFINITY;
  #profile: number | undefined;
  /** 'avc1', 'hvc1', another FourCC, or '' (a legacy non-AVC codec); undefined before any video. */
  #codec: string | undefined;
  readonly #waiters = new Set<() => void>();

  /** Watches `stream` from now on (until it ends). */
  static attach(stream: MediaStream): VideoCheck {
    const c = new VideoCheck();
    if (stream.videoConfig) c.push(stream.videoConfig);
    const stop = stream.observe((f) => c.push(f));
    stream.once("end", () => {
      stop();
      c.#wake();
    });
    return c;
  }

  push(f: Frame): void {
    if (f.kind !== "video") return;
    if (isAvcTag(f.data) && !f.config && f.data[1] !== 0) {
      // A legacy AVC media tag (the common case), read in place: what the general path below does for it.
      this.#codec = "avc1";
      if (f.data[1] === 1) this.#frame(f.dts, avcCts(f.data));
      return;
    }
    const tag = parseVideoTag(f.data);
    if (!tag) return;
    this.#codec = tag.fourcc;
    if (f.config || tag.packet === "config") {
      this.#profile = avcProfile(f);
      this.#wake();
      return;
    }
    if ((tag.fourcc !== "avc1" && tag.fourcc !== FOURCC_HEVC) || tag.packet !== "frame") return;
    this.#frame(f.dts, tag.cts);
  }

  /** A coded H.264 / H.265 frame at `dts` with composition offset `cts` (ms). */
  #frame(dts: number, cts: number): void {
    const pts = dts + cts;
    this.frames++;
    if (cts > this.maxCtsMs) this.maxCtsMs = cts;
    if (pts < this.#maxPts) this.reordered++;
    else this.#maxPts = pts;
    this.lastPts = pts;
    if (this.reordered === 1 || this.frames === PASSTHROUGH_AFTER) this.#wake();
  }

  /** The path's video is H.265. */
  get hevc(): boolean {
    return this.#codec === FOURCC_HEVC;
  }

  /**
   * What a viewer gets. `viewer.h265`: this viewer's offer takes H.265 (and we packetize it), so an H.265 path
   * without B-frames can go to it as it is; without it (`stream status`'s view) H.265 is always re-encoded.
   */
  verdict(viewer: { h265?: boolean } = {}): WebRtcVideoVerdict {
    const bad = this.#profile === undefined ? undefined : UNDECODABLE[this.#profile];
    if (bad) return { mode: "reencode", reason: `${bad}: browsers decode 8-bit 4:2:0 H.264 only` };
    const bframes = `B-frames (${this.reordered} of ${this.frames} frames out of presentation order, composition offsets up to ${this.maxCtsMs} ms)`;
    if (this.hevc && !(viewer.h265 && this.reordered === 0))
      return {
        mode: "reencode",
        reason:
          this.reordered > 0
            ? `H.265 source with ${bframes}: re-encoded to H.264 for WebRTC`
            : "H.265 source: re-encoded to H.264, which every browser's WebRTC decodes",
      };
    if (this.reordered > 0)
      return { mode: "reencode", reason: `${bframes}: WebRTC carries frames in decode order only` };
    if (this.#codec !== undefined && this.#codec !== "avc1" && !this.hevc)
      return { mode: "passthrough", reason: "not H.264 or H.265 (WebRTC viewers get no video)" };
    if (this.frames >= PASSTHROUGH_AFTER)
      return { mode: "passthrough", reason: `no B-frames in ${this.frames} frames, a profile browsers decode` };
    return { mode: "pending", reason: `${this.frames} of ${PASSTHROUGH_AFTER} frames seen` };
  }

  /** The verdict once it is no longer pending, or after `ms` (then still possibly pending). */
  async settled(ms: number, viewer: { h265?: boolean } = {}): Promise<WebRtcVideoVerdict> {
    const end = Date.now() + ms;
    while (this.verdict(viewer).mode === "pending" && Date.now() < end) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(0, end - Date.now()));
        this.#waiters.add(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.verdict(viewer);
  }

  #wake(): void {
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }
}
