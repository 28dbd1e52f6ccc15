/**
 * H.264 re-encoded for WebRTC viewers (from H.264 or H.265), only while some viewer of the path needs it
 * (video-check.ts says why): one ffmpeg per path, shared by its WHEP viewers, started by the first and stopped when
 * the last one leaves. The path's video goes to `ffmpeg -f flv -i pipe:0` with its hub timestamps kept (`-copyts`),
 * libx264 ultrafast zerolatency without B-frames in constrained baseline (what the WHEP answer's profile-level-id
 * announces), at the source's bitrate. Keyframes on demand: ffmpeg cannot be asked for one while it runs, but
 * `-force_key_frames source` makes an IDR of every input picture the decoder calls a key frame, and H.264's
 * decoder does so for a picture after a recovery point SEI: so a viewer's PLI/FIR (or a new viewer) puts that SEI
 * in front of the next input frame (`requestKeyframe`, at most one per KEYFRAME_MIN_INTERVAL_MS), and otherwise
 * the output's keyframes are the source's. ffmpeg's H.265 decoder keys on IRAP pictures only, so H.265 input is
 * marked in its timestamps instead: the frame's PTS one 90 kHz tick off the millisecond grid, which
 * `-force_key_frames expr:` sees (HEVC_MARK_EXPR). H.265 goes in as MPEG-TS (protocols/mpegts/mux.ts: the FLV demuxer of the
 * ffmpeg we ship against, 5.1, predates enhanced RTMP's hvc1), its times moved by TS_OFFSET_MS and moved back on
 * the way out. The FLV output is demuxed into a private stream (not in the hub: no other output sees it) that also
 * gets the path's audio as it is, so a WHEP session reads it exactly like the path itself.
 *
 * Starting: the encoder's input begins at the cached GOP (decoding needs its keyframe), but viewers should not
 * get that second-old burst: output older than the live edge at start is dropped, and the first frame at the
 * live edge is made an IDR (marked like a keyframe request) so viewers start on it
 * without waiting a GOP.
 */
import type { Logger } from "../../../core/logger.ts";
import { type FfmpegRun, lastLine, QUIET, runFfmpeg } from "../../ffmpeg.ts";
import type { Frame } from "../../frame.ts";
import { MediaStream, type Reader } from "../../hub.ts";
import { FlvDemuxer } from "../flv/demux.ts";
import { FOURCC_HEVC, parseVideoTag } from "../flv/ex-video.ts";
import { CODEC_AVC, flvHeader, flvTag, TAG_VIDEO, videoCodecId, videoFrame } from "../flv/tag.ts";
import { TsMuxer } from "../mpegts/mux.ts";
import { splitAvcConfig } from "./avc-tags.ts";
import type { VideoCheck } from "./video-check.ts";

export interface ReencoderStatus {
  running: boolean;
  /** WebRTC viewers reading the re-encoded video. */
  viewers: number;
  /** The ffmpeg child (null when not running). */
  pid: number | null;
  /** Target bitrate of the running encoder (kb/s). */
  bitrateKbps: number | null;
  /** Why the last ffmpeg ended while viewers still wanted it, if it did. */
  lastError: string | null;
}

/** Viewer queue of the private stream: about 4 s of 30 fps video with audio. */
const VIEWER_QUEUE = 256;
const MIN_KBPS = 300;
const DEFAULT_KBPS = 2500;

/** H.265 input (MPEG-TS): added to every time so the PCR, 700 ms behind the DTS, starts positive. */
const TS_OFFSET_MS = 1000;

/**
 * H.265 input: a frame to be made an IDR has its PTS one 90 kHz tick past the millisecond grid every other frame
 * is on; ffmpeg encodes in 1/90000 (`-enc_time_base`) and this expression, evaluated per frame with `t` counted from
 * the first frame encoded (unmarked), forces exactly those. The FLV output (ms) rounds the tick away.
 */
export const HEVC_MARK_EXPR = "expr:eq(mod(round(t*90000),90),1)";
/** Keyframe requests (viewers' PLI/FIR, new viewers) closer than this to the last forced IDR share it. */
export const KEYFRAME_MIN_INTERVAL_MS = 500;

/**
 * A recovery point SEI (H.264 payload type 6: recovery_frame_cnt 0, no exact match, no broken link): ffmpeg's
 * H.264 decoder marks the picture after it a key frame, which `-force_key_frames source` turns into an IDR.
 */
const RECOVERY_POINT_SEI = Buffer.from([0x06, 0x06, 0x01, 0x84, 0x80]);

/**
 * The AVC video tag `data` (NAL units after `offset`, `lengthSize`-byte lengths) with a recovery point SEI before
 * its first slice; undefined when it has none.
 */
export function withRecoveryPoint(data: Buffer, offset: number, lengthSize: number): Buffer | undefined {
  for (let at = offset; at + lengthSize < data.length; ) {
    const len = data.readUIntBE(at, lengthSize);
    const type = (data[at + lengthSize] ?? 0) & 0x1f;
    if (type >= 1 && type <= 5) {
      const sei = Buffer.alloc(lengthSize + RECOVERY_POINT_SEI.length);
      sei.writeUIntBE(RECOVERY_POINT_SEI.length, 0, lengthSize);
      RECOVERY_POINT_SEI.copy(sei, lengthSize);
      return Buffer.concat([data.subarray(0, at), sei, data.subarray(at)]);
    }
    at += lengthSize + len;
  }
  return undefined;
}

/**
 * The source's bitrate: the server's figure, or for a path younger than that figure's window the rate of the
 * cached GOP (the figure would undercount it) when that spans a useful time.
 */
function startBitrate(source: MediaStream, head: Frame[]): number {
  let kbps = source.stats.figures().bitrateKbps;
  const media = head.filter((f) => !f.config);
  const span = media.length > 1 ? (media.at(-1) as Frame).dts - (media[0] as Frame).dts : 0;
  if (Date.now() - source.publisher.since < 5000 && span >= 300) {
    const bytes = media.reduce((n, f) => n + f.data.length, 0);
    kbps = Math.max(kbps, Math.round((bytes * 8) / span));
  }
  return Math.max(MIN_KBPS, kbps || DEFAULT_KBPS);
}

/** The re-encoder's ffmpeg arguments: H.265 (MPEG-TS) or H.264 (FLV) on stdin, H.264 FLV on stdout. */
export function encoderArgs(hevc: boolean, kbps: number): string[] {
  return [
    ...QUIET,
    // A small probe (the FLV header says video only; the sequence header comes first; MPEG-TS: the PMT names
    // the codec) and slice threads only: frame threads would hold a frame per thread.
    ...["-probesize", "32", "-analyzeduration", "0", "-thread_type", "slice"],
    ...["-f", hevc ? "mpegts" : "flv", "-i", "pipe:0"],
    ...["-copyts", "-an", "-sn", "-dn", "-fps_mode", "passthrough"],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-bf", "0"],
    // An IDR where the source has one and where an input frame is marked (the live edge, keyframe requests):
    // H.264 with a recovery point SEI (`source`), H.265 with a PTS tick (HEVC_MARK_EXPR, times in 1/90000).
    // -g is only a safety net.
    ...["-pix_fmt", "yuv420p", "-g", "600", "-sc_threshold", "0", "-forced-idr", "1"],
    ...(hevc ? ["-enc_time_base", "1:90000", "-force_key_frames", HEVC_MARK_EXPR] : ["-force_key_frames", "source"]),
    ...["-b:v", `${kbps}k`, "-maxrate", `${kbps}k`, "-bufsize", `${kbps}k`],
    ...["-f", "flv", "-flvflags", "no_duration_filesize", "-flush_packets", "1", "pipe:1"],
  ];
}

export interface Lease {
  /** The viewer's reader on the re-encoded stream (starts at its next keyframe). */
  reader: Reader;
  /** The viewer lost a picture (PLI/FIR) or just joined: ask the encoder for a keyframe (rate-limited). */
  keyframe(): boolean;
  /** The viewer left; the last one stops ffmpeg. */
  release(): void;
}

export class VideoReencoder {
  readonly #source: MediaStream;
  readonly #check: VideoCheck;
  readonly #ffmpegPath: string;
  readonly #log: Logger;
  #out: MediaStream | undefined;
  #ff: FfmpegRun | undefined;
  #input: Reader | undefined;
  #viewers = 0;
  #bitrateKbps: number | null = null;
  #lastError: string | null = null;
  /** Mark the next input frame for a keyframe. */
  #markNext = false;
  #lastForced = 0;
  /**
   * Keyframe requests taken (a viewer's PLI/FIR, a new viewer), IDRs asked of ffmpeg for them, IDRs sent, video
   * frames sent.
   */
  readonly keyframes = { requests: 0, forced: 0, out: 0, frames: 0 };

  constructor(source: MediaStream, check: VideoCheck, ffmpegPath: string, log: Logger) {
    this.#source = source;
    this.#check = check;
    this.#ffmpegPath = ffmpegPath;
    this.#log = log.child({ reencode: source.path });
  }

  get running(): boolean {
    return this.#ff !== undefined;
  }

  get pid(): number | undefined {
    return this.#ff?.proc.pid;
  }

  status(): ReencoderStatus {
    return {
      running: this.running,
      viewers: this.#viewers,
      pid: this.#ff?.proc.pid ?? null,
      bitrateKbps: this.running ? this.#bitrateKbps : null,
      lastError: this.#lastError,
    };
  }

  /**
   * A viewer needs a keyframe (its PLI or FIR, or it just joined): the next input frame is marked so the encoder
   * makes an IDR of it, unless one was forced less than KEYFRAME_MIN_INTERVAL_MS ago (that one serves). True when
   * one was asked for.
   */
  requestKeyframe(now = Date.now()): boolean {
    if (!this.#ff) return false;
    this.keyframes.requests++;
    if (this.#markNext || now - this.#lastForced < KEYFRAME_MIN_INTERVAL_MS) return false;
    this.#markNext = true;
    this.#lastForced = now;
    this.keyframes.forced++;
    return true;
  }

  /** A reader of the re-encoded stream for one viewer; the first one starts ffmpeg. */
  acquire(remote: string): Lease {
    if (!this.#out || this.#out.ended) this.#start();
    const out = this.#out as MediaStream;
    this.#viewers++;
    const reader = out.addReader("webrtc", remote, { fromKeyframe: false });
    let released = false;
    return {
      reader,
      keyframe: () => this.requestKeyframe(),
      release: () => {
        if (released) return;
        released = true;
        reader.close();
        if (--this.#viewers === 0) this.#stop();
      },
    };
  }

  #start(): void {
    const source = this.#source;
    const out = new MediaStream(
      source.path,
      { protocol: "webrtc-reencode", remote: "ffmpeg", since: Date.now() },
      { readerQueue: VIEWER_QUEUE, gopCache: 1 },
    );
    this.#out = out;
    // The encoder's input: the path from its cached GOP on (queued by addReader right here), video to ffmpeg,
    // audio straight to the viewers.
    const input = source.addReader("webrtc", "packager", { fromKeyframe: true });
    this.#input = input;
    const head: Frame[] = [];
    for (let f = input.poll(); f; f = input.poll()) head.push(f);
    const kbps = startBitrate(source, head);
    this.#bitrateKbps = kbps;
    // The live edge: frames presented from here on reach viewers, starting with a forced IDR. ffmpeg's `t` in
    // -force_key_frames counts from the first frame it encodes (the cached GOP's keyframe), even with -copyts.
    const liveMs = this.#check.lastPts ?? 0;
    // The input's codec is the path's at start (frames of another one are left out).
    const fourcc = source.videoConfig ? parseVideoTag(source.videoConfig.data)?.fourcc : undefined;
    const hevc = fourcc === FOURCC_HEVC;
    const codec = hevc ? FOURCC_HEVC : "avc1";
    const tagOf = (f: Frame) => {
      const t = f.kind === "video" ? parseVideoTag(f.data) : undefined;
      return t?.fourcc === codec ? t : undefined;
    };
    const shift = hevc ? TS_OFFSET_MS : 0;
    this.#markNext = false;
    const args = encoderArgs(hevc, kbps);
    const ff = runFfmpeg(this.#ffmpegPath, args);
    this.#ff = ff;
    this.#log.info("webrtc re-encoder started", { pid: ff.proc.pid, kbps });
    const demux = new FlvDemuxer();
    let live = false;
    ff.proc.stdout.on("data", (d: Buffer) => {
      if (this.#ff !== ff) return;
      let tags: ReturnType<FlvDemuxer["push"]>;
      try {
        tags = demux.push(d);
      } catch (e) {
        this.#fail(ff, `ffmpeg output: ${(e as Error).message}`);
        return;
      }
      for (const t of tags) {
        if (t.type !== TAG_VIDEO) continue;
        const f = videoFrame(t.timestamp - shift, t.data);
        if (videoCodecId(f) !== CODEC_AVC) continue;
        if (!f.config && !live) {
          if (!f.keyframe || f.dts < liveMs) continue;
          live = true;
        }
        if (f.keyframe) this.keyframes.out++;
        if (!f.config) this.keyframes.frames++;
        out.write(f);
      }
    });
    ff.exited.then((code) => {
      if (this.#ff !== ff) return;
      this.#fail(ff, lastLine(ff.stderr()) || `ffmpeg exited with ${code}`);
    });
    const mux = hevc ? new TsMuxer({ offsetMs: TS_OFFSET_MS }) : undefined;
    // The first frame presented at the live edge is marked for an IDR, and so is the next one after a keyframe
    // request (H.265: and every source keyframe but the first frame, which `-force_key_frames source` gives H.264).
    let lengthSize = 4;
    let edgeMarked = false;
    let started = false;
    type Tag = NonNullable<ReturnType<typeof tagOf>>;
    /** Whether this frame should be marked; `done` says it was, which consumes the edge or the request. */
    const wanted = (f: Frame, tag: Tag) => {
      const edge = !edgeMarked && f.dts + tag.cts >= liveMs;
      const done = () => {
        if (edge) edgeMarked = true;
        else this.#markNext = false;
      };
      return { want: edge || this.#markNext, done };
    };
    const markAvc = (f: Frame, tag: Tag): Buffer => {
      if (tag.packet === "config") {
        try {
          lengthSize = splitAvcConfig(f.data.subarray(tag.offset)).lengthSize;
        } catch {}
        return f.data;
      }
      if (tag.packet !== "frame") return f.data;
      const w = wanted(f, tag);
      const marked = w.want ? withRecoveryPoint(f.data, tag.offset, lengthSize) : undefined;
      if (!marked) return f.data;
      w.done();
      return marked;
    };
    const muxHevc = (m: TsMuxer, f: Frame, tag: Tag): Buffer => {
      // Every unmarked PTS on the millisecond grid (hub times may be fractional).
      const g = Number.isInteger(f.dts) ? f : { ...f, dts: Math.round(f.dts) };
      if (tag.packet !== "frame" || !started) {
        const b = m.frame(g);
        if (tag.packet === "frame" && b.length > 0) started = true; // ffmpeg's `t` counts from this one
        return b;
      }
      const w = wanted(f, tag);
      if (w.want) w.done();
      return m.frame(g, w.want || f.keyframe ? 1 : 0);
    };
    const encode = (f: Frame) => {
      const tag = tagOf(f);
      if (!tag) return Buffer.alloc(0);
      if (mux) return muxHevc(mux, f, tag);
      return flvTag(TAG_VIDEO, f.config ? 0 : f.dts, markAvc(f, tag));
    };
    this.#pump(input, head, ff, out, mux ? undefined : flvHeader(false, true), encode).catch((e) =>
      this.#fail(ff, (e as Error).message),
    );
  }

  /** The source's video to ffmpeg's stdin (as `encode` writes it, after `header`), its audio to the viewers. */
  async #pump(
    input: Reader,
    head: Frame[],
    ff: FfmpegRun,
    out: MediaStream,
    header: Buffer | undefined,
    encode: (f: Frame) => Buffer,
  ): Promise<void> {
    const stdin = ff.proc.stdin;
    let ok = true;
    stdin.once("close", () => {
      ok = false;
    });
    const write = async (b: Buffer) => {
      if (!ok || !stdin.writable) return;
      if (!stdin.write(b)) await new Promise<void>((r) => stdin.once("drain", r).once("close", r));
    };
    if (header) await write(header);
    for (;;) {
      const f: Frame | undefined = head.shift() ?? (await input.next());
      if (!f || !ok || this.#ff !== ff) break;
      if (f.kind === "audio") out.write(f);
      else if (f.kind === "video") {
        const b = encode(f);
        if (b.length > 0) await write(b);
      }
    }
    // The path ended: the viewers see the end once the encoder's last frames are out.
    if (this.#ff === ff) stdin.end();
    await ff.exited;
    out.end();
  }

  #fail(ff: FfmpegRun, why: string): void {
    if (this.#ff !== ff) return;
    if (!this.#source.ended) {
      this.#lastError = why;
      this.#log.warn("webrtc re-encoder failed", { error: why });
    }
    this.#stop();
  }

  #stop(): void {
    const ff = this.#ff;
    this.#ff = undefined;
    this.#input?.close();
    this.#input = undefined;
    ff?.proc.stdin.end();
    ff?.stop(500);
    // Viewers still reading (ffmpeg failed) end with it: their sessions close.
    this.#out?.end();
    this.#out = undefined;
    if (ff) this.#log.info("webrtc re-encoder stopped", { pid: ff.proc.pid });
  }
}
