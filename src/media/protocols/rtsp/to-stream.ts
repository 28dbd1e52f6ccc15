/**
 * RTSP publisher (ANNOUNCE + RECORD) -> hub. Each announced track's RTP becomes hub frames:
 *  - H.264 (RFC 6184) and H.265 (RFC 7798): access units; parameter sets (from the SDP's sprop-* and in-band)
 *    become the AVC sequence header / enhanced-RTMP 'hvc1' SequenceStart, re-sent when they change. Nothing is
 *    written before the first keyframe with its parameter sets, and after a loss nothing until the next one.
 *  - AAC (RFC 3640 mpeg4-generic): each access unit one frame, after the AudioSpecificConfig of the SDP.
 *  - Opus (RFC 7587): each packet one E-RTMP Opus frame, after an OpusHead.
 * Timestamps: every track's RTP clock is placed on one hub clock, through the publisher's RTCP sender reports
 * (NTP <-> RTP time per track) when it sent them, else by arrival. RTP carries presentation times only, so a
 * publisher's decode times are derived (DecodeOrder): dts = pts until a B-frame shows, then a few units of
 * look-ahead.
 */
import { parseAudioSpecificConfig } from "../../codecs/aac.ts";
import { lengthPrefixed } from "../../codecs/annexb.ts";
import { HEVC_NAL, hevcConfigRecord, hevcNalType, isHevcKeyframe } from "../../codecs/hevc.ts";
import type { Frame } from "../../frame.ts";
import type { MediaStream } from "../../hub.ts";
import { opusConfigFrame, opusHead, opusPacketFrame, opusPacketSamples } from "../flv/ex-audio.ts";
import { exVideoTag, FOURCC_HEVC, VIDEO_PACKET } from "../flv/ex-video.ts";
import { audioFrame, videoFrame } from "../flv/tag.ts";
import { AacDepacketizer } from "../rtp/aac.ts";
import { type AccessUnit, H264Depacketizer, NAL, nalType } from "../rtp/h264.ts";
import { H265Depacketizer } from "../rtp/h265.ts";
import type { RtpPacket, SenderReport } from "../rtp/packet.ts";
import { avcConfigFrame, avcConfigRecord, avcNaluFrame } from "../webrtc/avc-tags.ts";
import type { SdpTrack } from "./sdp.ts";

/** What a track needs to be published; throws (with the reason to answer the publisher) otherwise. */
export function checkTracks(tracks: SdpTrack[]): void {
  if (tracks.length === 0) throw new Error("the SDP has no audio or video track");
  const kinds = new Set<string>();
  for (const t of tracks) {
    if (!t.codec)
      throw new Error(
        `${t.kind} codec '${t.encoding || `payload type ${t.payloadType}`}' is not supported (H.264, H.265, AAC, Opus)`,
      );
    if (kinds.has(t.kind)) throw new Error(`more than one ${t.kind} track`);
    kinds.add(t.kind);
    if (t.clockRate <= 0) throw new Error(`${t.kind} track has no clock rate`);
    if (t.codec === "AAC" && !/^[0-9a-f]+$/i.test(t.fmtp.get("config") ?? ""))
      throw new Error("AAC track without its config (fmtp config=)");
    if (
      t.codec === "AAC" &&
      t.fmtp.has("sizelength") &&
      !/^([1-9]|[12][0-9]|3[0-2])$/.test(t.fmtp.get("sizelength") ?? "")
    )
      throw new Error("AAC track with a sizelength outside 1..32");
  }
}

interface Anchor {
  wall: number;
  ntp: number | undefined;
}

/** One track's RTP clock on the session's hub clock. */
class TrackClock {
  readonly #rate: number;
  readonly #session: { origin: Anchor | undefined };
  #last: number | undefined;
  #ticks = 0;
  #offset: number | undefined;
  sr: SenderReport | undefined;

  constructor(rate: number, session: { origin: Anchor | undefined }) {
    this.#rate = rate;
    this.#session = session;
  }

  ms(ts: number, now = Date.now()): number {
    if (this.#last !== undefined) this.#ticks += (ts - this.#last) | 0;
    this.#last = ts;
    const at = (this.#ticks * 1000) / this.#rate;
    if (this.#offset === undefined) {
      const ntp = this.sr ? this.sr.ntpMs + (((ts - this.sr.rtp) | 0) * 1000) / this.#rate : undefined;
      this.#session.origin ??= { wall: now, ntp };
      const o = this.#session.origin;
      const hub = ntp !== undefined && o.ntp !== undefined ? ntp - o.ntp : now - o.wall;
      this.#offset = hub - at;
    }
    return this.#offset + at;
  }
}

interface TrackIn {
  push(p: RtpPacket): void;
  clock: TrackClock;
}

const b64 = (s: string | undefined): Buffer | undefined => (s ? Buffer.from(s, "base64") : undefined);

/** Access units a stream with B-frames is held back for: its decode times are the smallest of these ahead. */
export const REORDER_WINDOW = 4;

/**
 * Decode times for units that carry presentation times only (RTP). While presentation times only grow (no
 * B-frames: cameras, low-latency encoders) dts = pts and, after the first REORDER_WINDOW units (held to find
 * out), nothing waits. Once one goes backwards the stream
 * reorders: from then on each unit is held until REORDER_WINDOW more have come, and its dts is the smallest pts
 * among it and those, which is monotonic and never after its pts when the encoder reorders no deeper than the
 * window (x264's default B-pyramid reorders 2 deep). Decode times never go backwards.
 */
export class DecodeOrder<T> {
  readonly #win: { v: T; pts: number }[] = [];
  #maxPts = Number.NEGATIVE_INFINITY;
  #lastDts = Number.NEGATIVE_INFINITY;
  #decided = false;
  reordered = false;

  push(v: T, pts: number): { v: T; dts: number; cts: number }[] {
    if (pts < this.#maxPts) this.reordered = true;
    this.#maxPts = Math.max(this.#maxPts, pts);
    if (!this.reordered && this.#decided) return [this.#out(v, pts, pts)];
    this.#win.push({ v, pts });
    const out: { v: T; dts: number; cts: number }[] = [];
    if (!this.reordered) {
      // The first units wait to see whether the stream reorders; none did: they go out with dts = pts.
      if (this.#win.length <= REORDER_WINDOW) return out;
      this.#decided = true;
      for (const w of this.#win.splice(0)) out.push(this.#out(w.v, w.pts, w.pts));
      return out;
    }
    this.#decided = true;
    while (this.#win.length > REORDER_WINDOW) {
      let min = Number.POSITIVE_INFINITY;
      for (const w of this.#win) min = Math.min(min, w.pts);
      const first = this.#win.shift() as { v: T; pts: number };
      out.push(this.#out(first.v, first.pts, min));
    }
    return out;
  }

  #out(v: T, pts: number, dts: number): { v: T; dts: number; cts: number } {
    const d = Math.max(this.#lastDts, Math.round(dts));
    this.#lastDts = d;
    return { v, dts: d, cts: Math.round(pts) - d };
  }
}

export class RtspToStream {
  readonly #stream: MediaStream;
  readonly #tracks: TrackIn[];
  readonly #hasVideo: boolean;
  #videoStarted = false;
  readonly #session: { origin: Anchor | undefined } = { origin: undefined };
  /** Access units or packets lost or unusable (counted, never fatal). */
  dropped = 0;

  constructor(stream: MediaStream, tracks: SdpTrack[]) {
    checkTracks(tracks);
    this.#stream = stream;
    this.#hasVideo = tracks.some((t) => t.kind === "video");
    this.#tracks = tracks.map((t) => this.#track(t));
  }

  /** An RTP packet of track `i` (its index in the SDP). */
  push(i: number, p: RtpPacket): void {
    this.#tracks[i]?.push(p);
  }

  /** An RTCP packet of track `i`: its sender report places the track on the shared clock. */
  report(i: number, sr: SenderReport): void {
    const t = this.#tracks[i];
    if (t) t.clock.sr = sr;
  }

  #write(f: Frame): void {
    this.#stream.write(f);
  }

  /** Audio waits for the first video keyframe (when there is video): outputs then start with both tracks. */
  #audioOk(): boolean {
    return !this.#hasVideo || this.#videoStarted;
  }

  #track(t: SdpTrack): TrackIn {
    const clock = new TrackClock(t.clockRate, this.#session);
    switch (t.codec) {
      case "H264":
        return this.#h264(t, clock);
      case "H265":
        return this.#h265(t, clock);
      case "AAC":
        return this.#aac(t, clock);
      default:
        return this.#opus(clock);
    }
  }

  /** Video common to both codecs: units -> frames with a monotonic dts, keyframe gating after loss. */
  #video(
    clock: TrackClock,
    depack: { push(p: RtpPacket): AccessUnit[]; dropped: number },
    unit: (au: AccessUnit, dts: number, cts: number) => "waiting" | "ok",
  ): TrackIn {
    const order = new DecodeOrder<AccessUnit>();
    let dropped = 0;
    const push = (p: RtpPacket) => {
      for (const au of depack.push(p)) {
        const pts = clock.ms(au.timestamp);
        if (pts < 0) continue;
        for (const o of order.push(au, pts)) if (unit(o.v, o.dts, o.cts) === "ok") this.#videoStarted = true;
      }
      if (depack.dropped !== dropped) {
        this.dropped += depack.dropped - dropped;
        dropped = depack.dropped;
      }
    };
    return { push, clock };
  }

  #h264(t: SdpTrack, clock: TrackClock): TrackIn {
    const props = (t.fmtp.get("sprop-parameter-sets") ?? "").split(",").map(b64);
    let sps = props.find((n) => n && nalType(n) === NAL.SPS);
    let pps = props.find((n) => n && nalType(n) === NAL.PPS);
    let config: Buffer | undefined;
    const updateConfig = (dts: number) => {
      if (!sps || !pps) return;
      const rec = avcConfigRecord(sps, pps);
      if (config && rec.equals(config)) return;
      config = rec;
      this.#write(avcConfigFrame(Math.max(0, dts), rec));
    };
    updateConfig(0);
    let waitKey = true;
    let dropped = 0;
    const depack = new H264Depacketizer();
    return this.#video(clock, depack, (au, dts, cts) => {
      if (depack.dropped !== dropped) {
        dropped = depack.dropped;
        waitKey = true;
      }
      const media: Buffer[] = [];
      let idr = false;
      for (const n of au.nals) {
        const type = nalType(n);
        if (type === NAL.SPS) sps = n;
        else if (type === NAL.PPS) pps = n;
        else if (type !== NAL.AUD) {
          media.push(n);
          if (type === NAL.IDR) idr = true;
        }
      }
      updateConfig(dts);
      if (media.length === 0) return "waiting";
      if (waitKey) {
        if (!idr || !config) {
          this.dropped++;
          return "waiting";
        }
        waitKey = false;
      }
      this.#write(avcNaluFrame(dts, media, idr, cts));
      return "ok";
    });
  }

  #h265(t: SdpTrack, clock: TrackClock): TrackIn {
    let vps = b64(t.fmtp.get("sprop-vps"));
    let sps = b64(t.fmtp.get("sprop-sps"));
    let pps = b64(t.fmtp.get("sprop-pps"));
    let key: string | undefined;
    const updateConfig = (dts: number) => {
      if (!vps || !sps || !pps) return;
      const k = Buffer.concat([vps, sps, pps]).toString("base64");
      if (k === key) return;
      let rec: Buffer;
      try {
        rec = hevcConfigRecord(vps, sps, pps);
      } catch {
        return; // an unreadable SPS: wait for a better one
      }
      key = k;
      this.#write(videoFrame(Math.max(0, dts), exVideoTag(VIDEO_PACKET.SequenceStart, FOURCC_HEVC, true, rec)));
    };
    updateConfig(0);
    let waitKey = true;
    let dropped = 0;
    const depack = new H265Depacketizer();
    return this.#video(clock, depack, (au, dts, cts) => {
      if (depack.dropped !== dropped) {
        dropped = depack.dropped;
        waitKey = true;
      }
      const media: Buffer[] = [];
      let irap = false;
      for (const n of au.nals) {
        const type = hevcNalType(n);
        if (type === HEVC_NAL.VPS) vps = n;
        else if (type === HEVC_NAL.SPS) sps = n;
        else if (type === HEVC_NAL.PPS) pps = n;
        else if (type !== HEVC_NAL.AUD) {
          media.push(n);
          if (isHevcKeyframe(n)) irap = true;
        }
      }
      updateConfig(dts);
      if (media.length === 0) return "waiting";
      if (waitKey) {
        if (!irap || key === undefined) {
          this.dropped++;
          return "waiting";
        }
        waitKey = false;
      }
      const body = exVideoTag(VIDEO_PACKET.CodedFrames, FOURCC_HEVC, irap, lengthPrefixed(media), cts);
      this.#write(videoFrame(dts, body));
      return "ok";
    });
  }

  #aac(t: SdpTrack, clock: TrackClock): TrackIn {
    const asc = Buffer.from(t.fmtp.get("config") ?? "", "hex");
    parseAudioSpecificConfig(asc);
    this.#write(audioFrame(0, Buffer.concat([Buffer.from([0xaf, 0]), asc])));
    const num = (k: string, d: number) => {
      const v = Number(t.fmtp.get(k));
      return Number.isInteger(v) && v >= 0 && v <= 32 ? v : d;
    };
    const depack = new AacDepacketizer({
      sizeLength: num("sizelength", 13),
      indexLength: num("indexlength", 3),
      indexDeltaLength: num("indexdeltalength", 3),
    });
    let last = Number.NEGATIVE_INFINITY;
    const push = (p: RtpPacket) => {
      for (const u of depack.push(p.payload, p.timestamp, p.marker)) {
        const ms = Math.round(clock.ms(u.timestamp));
        if (!this.#audioOk() || ms < 0 || ms < last) {
          this.dropped++;
          continue;
        }
        last = ms;
        this.#write(audioFrame(ms, Buffer.concat([Buffer.from([0xaf, 1]), u.unit])));
      }
    };
    return { push, clock };
  }

  #opus(clock: TrackClock): TrackIn {
    // RFC 7587: always signalled as opus/48000/2; the decoder outputs what sprop-stereo says, two channels here.
    this.#write(opusConfigFrame(0, opusHead({ channels: 2, preSkip: 0, inputSampleRate: 48000 })));
    let last = Number.NEGATIVE_INFINITY;
    const push = (p: RtpPacket) => {
      const ms = Math.round(clock.ms(p.timestamp));
      if (!this.#audioOk() || ms < 0 || ms <= last || opusPacketSamples(p.payload) === 0) {
        this.dropped++;
        return;
      }
      last = ms;
      this.#write(opusPacketFrame(ms, p.payload));
    };
    return { push, clock };
  }
}
