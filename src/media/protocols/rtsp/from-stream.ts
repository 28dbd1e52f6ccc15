/**
 * Hub -> RTSP reader (DESCRIBE + SETUP + PLAY). The path's codec configuration gives the SDP (H.264 with
 * sprop-parameter-sets, H.265 with sprop-vps/sps/pps, AAC as mpeg4-generic AAC-hbr with its config, Opus); its
 * frames become RTP packets: video access units as single NAL units or FU-A / FU fragments (parameter sets in-band
 * before every keyframe, so a reader can start at any one), AAC one access unit per packet, Opus one packet per
 * packet. RTP timestamps are presentation times (dts + composition offset) on each track's clock; both tracks
 * share one origin, and sender reports map them to the wallclock so readers line audio up with video.
 */
import { randomInt } from "node:crypto";
import { parseAudioSpecificConfig } from "../../codecs/aac.ts";
import { HEVC_NAL, hevcNalType, hvccNalUnits } from "../../codecs/hevc.ts";
import type { Frame } from "../../frame.ts";
import type { MediaStream } from "../../hub.ts";
import { isOpus, opusPacket, parseExAudio, parseOpusHead } from "../flv/ex-audio.ts";
import { FOURCC_HEVC, parseVideoTag } from "../flv/ex-video.ts";
import { SOUND_AAC, soundFormat } from "../flv/tag.ts";
import { packetizeAac } from "../rtp/aac.ts";
import { NAL, nalType, packetizeH264 } from "../rtp/h264.ts";
import { packetizeH265 } from "../rtp/h265.ts";
import { buildRtp, buildSenderReport } from "../rtp/packet.ts";
import { avccNals, splitAvcConfig } from "../webrtc/avc-tags.ts";
import type { SdpOut } from "./sdp.ts";

/** RTP payload bytes per packet: a 1500-byte MTU less IP, UDP and RTP headers, with room for tunnels. */
export const RTP_MTU = 1400;

export interface OutTrack {
  sdp: SdpOut;
  codec: "H264" | "H265" | "AAC" | "OPUS";
  rate: number;
  ssrc: number;
  seq: number;
  base: number;
  packets: number;
  octets: number;
  /** Parameter sets sent before each keyframe, and the NAL length size of the frames (video). */
  params: Buffer[];
  lengthSize: number;
}

const track = (
  kind: "video" | "audio",
  i: number,
  codec: OutTrack["codec"],
  rate: number,
  rtpmap: string,
  fmtp: string | undefined,
  params: Buffer[] = [],
  lengthSize = 4,
): OutTrack => ({
  sdp: { kind, payloadType: 96 + i, rtpmap, fmtp, control: `trackID=${i}` },
  codec,
  rate,
  ssrc: randomInt(1, 2 ** 32 - 1),
  seq: randomInt(0, 0xffff),
  base: randomInt(0, 2 ** 32 - 1),
  packets: 0,
  octets: 0,
  params,
  lengthSize,
});

/** The tracks a reader of `stream` gets, from its codec configuration (none yet: no tracks). */
export function streamTracks(stream: MediaStream): OutTrack[] {
  const out: OutTrack[] = [];
  const v = stream.videoConfig;
  if (v) {
    const tag = parseVideoTag(v.data);
    if (tag?.fourcc === "avc1") {
      const p = splitAvcConfig(v.data.subarray(5));
      const sps = p.sps[0];
      if (sps && p.pps[0]) {
        const sprop = [...p.sps, ...p.pps].map((n) => n.toString("base64")).join(",");
        const pli = sps.subarray(1, 4).toString("hex").toUpperCase();
        const fmtp = `packetization-mode=1; profile-level-id=${pli}; sprop-parameter-sets=${sprop}`;
        out.push(track("video", out.length, "H264", 90000, "H264/90000", fmtp, [...p.sps, ...p.pps], p.lengthSize));
      }
    } else if (tag?.fourcc === FOURCC_HEVC) {
      const rec = v.data.subarray(tag.offset);
      const nals = hvccNalUnits(rec);
      const vps = nals.get(HEVC_NAL.VPS)?.[0];
      const sps = nals.get(HEVC_NAL.SPS)?.[0];
      const pps = nals.get(HEVC_NAL.PPS)?.[0];
      if (vps && sps && pps) {
        const b = (n: Buffer) => n.toString("base64");
        const fmtp = `sprop-vps=${b(vps)}; sprop-sps=${b(sps)}; sprop-pps=${b(pps)}`;
        const lengthSize = ((rec[21] ?? 3) & 3) + 1;
        out.push(track("video", out.length, "H265", 90000, "H265/90000", fmtp, [vps, sps, pps], lengthSize));
      }
    }
  }
  const a = stream.audioConfig;
  if (a && soundFormat(a) === SOUND_AAC && a.data.length > 3) {
    const asc = a.data.subarray(2);
    const info = parseAudioSpecificConfig(asc);
    const fmtp = `streamtype=5; profile-level-id=1; mode=AAC-hbr; sizelength=13; indexlength=3; indexdeltalength=3; config=${asc.toString("hex")}`;
    const rtpmap = `MPEG4-GENERIC/${info.sampleRate}/${info.channels}`;
    out.push(track("audio", out.length, "AAC", info.sampleRate, rtpmap, fmtp));
  } else if (a && isOpus(a)) {
    let stereo = true;
    try {
      stereo = parseOpusHead(parseExAudio(a.data)?.body ?? Buffer.alloc(0)).channels > 1;
    } catch {}
    out.push(track("audio", out.length, "OPUS", 48000, "opus/48000/2", stereo ? "sprop-stereo=1" : undefined));
  }
  return out;
}

export interface RtpSink {
  /** Send an RTP packet of track `i`; false: the transport is full (the caller waits for `drained`). */
  rtp(i: number, packet: Buffer): boolean;
  rtcp(i: number, packet: Buffer): void;
  drained(): Promise<void>;
}

/** Frames -> RTP packets for the tracks a reader set up (`enabled`: indices into `tracks`). */
export class RtpSender {
  readonly #tracks: OutTrack[];
  readonly #enabled: Set<number>;
  readonly #sink: RtpSink;
  #t0: number | undefined;
  #wall0 = 0;
  #videoStarted = false;
  readonly #video: number;
  readonly #audio: number;
  /** AAC frames too large for AAC-hbr's 13-bit AU size (over 8191 bytes), dropped instead of sent wrong. */
  oversizedAudio = 0;

  constructor(tracks: OutTrack[], enabled: Set<number>, sink: RtpSink) {
    this.#tracks = tracks;
    this.#enabled = enabled;
    this.#sink = sink;
    this.#video = tracks.findIndex((t) => t.sdp.kind === "video");
    this.#audio = tracks.findIndex((t) => t.sdp.kind === "audio");
  }

  /** RTP-Info for the PLAY answer: where each track's sequence numbers and timestamps start. */
  rtpInfo(base: string): string {
    return [...this.#enabled]
      .map((i) => this.#tracks[i] as OutTrack)
      .map((t) => `url=${base}/${t.sdp.control};seq=${t.seq};rtptime=${t.base}`)
      .join(",");
  }

  #ts(t: OutTrack, ms: number): number {
    return (t.base + Math.round(((ms - (this.#t0 ?? ms)) * t.rate) / 1000)) >>> 0;
  }

  #send(i: number, payloads: Buffer[], ts: number): boolean {
    const t = this.#tracks[i] as OutTrack;
    let ok = true;
    for (const [k, payload] of payloads.entries()) {
      const p = buildRtp({
        payloadType: t.sdp.payloadType,
        // Video: the access unit's last packet; AAC: a whole unit's or its last fragment's (RFC 3640 §3.2.3).
        marker: k === payloads.length - 1,
        sequenceNumber: t.seq,
        timestamp: ts,
        ssrc: t.ssrc,
        payload,
      });
      t.seq = (t.seq + 1) & 0xffff;
      t.packets++;
      t.octets += payload.length;
      ok = this.#sink.rtp(i, p) && ok;
    }
    return ok;
  }

  /** Sender reports for every enabled track that has sent something (call about once a second). */
  reports(now = Date.now()): void {
    if (this.#t0 === undefined) return;
    for (const i of this.#enabled) {
      const t = this.#tracks[i] as OutTrack;
      if (t.packets === 0) continue;
      const rtp = (t.base + Math.round(((now - this.#wall0) * t.rate) / 1000)) >>> 0;
      this.#sink.rtcp(i, buildSenderReport({ ssrc: t.ssrc, ntpMs: now, rtp, packets: t.packets, octets: t.octets }));
    }
  }

  /** Send one frame; resolves when the transport can take more. */
  async frame(f: Frame): Promise<void> {
    if (f.config) return;
    let ok = true;
    if (f.kind === "video" && this.#video >= 0 && this.#enabled.has(this.#video)) {
      const t = this.#tracks[this.#video] as OutTrack;
      const tag = parseVideoTag(f.data);
      if (tag?.packet !== "frame") return;
      if (!this.#videoStarted) {
        if (!f.keyframe) return;
        this.#videoStarted = true;
      }
      this.#start(f.dts);
      const ts = this.#ts(t, f.dts + tag.cts);
      const body = f.data.subarray(tag.offset);
      if (t.codec === "H264" && tag.fourcc === "avc1") {
        let nals = avccNals(body, t.lengthSize).filter((n) => nalType(n) !== NAL.AUD);
        if (f.keyframe && !nals.some((n) => nalType(n) === NAL.SPS)) nals = [...t.params, ...nals];
        ok = this.#send(this.#video, packetizeH264(nals, RTP_MTU), ts);
      } else if (t.codec === "H265" && tag.fourcc === FOURCC_HEVC) {
        let nals = avccNals(body, t.lengthSize).filter((n) => hevcNalType(n) !== HEVC_NAL.AUD);
        if (f.keyframe && !nals.some((n) => hevcNalType(n) === HEVC_NAL.VPS)) nals = [...t.params, ...nals];
        ok = this.#send(this.#video, packetizeH265(nals, RTP_MTU), ts);
      }
    } else if (f.kind === "audio" && this.#audio >= 0 && this.#enabled.has(this.#audio)) {
      if (this.#video >= 0 && this.#enabled.has(this.#video) && !this.#videoStarted) return;
      const t = this.#tracks[this.#audio] as OutTrack;
      let payloads: Buffer[] | undefined;
      if (t.codec === "AAC" && soundFormat(f) === SOUND_AAC && f.data[1] === 1) {
        payloads = packetizeAac(f.data.subarray(2), RTP_MTU);
        if (payloads.length === 0) {
          this.oversizedAudio++; // beyond AAC-hbr's 13-bit AU size: not sent (counted, the caller says so)
          return;
        }
      } else if (t.codec === "OPUS") {
        const p = opusPacket(f);
        payloads = p ? [p] : undefined;
      }
      if (!payloads) return;
      this.#start(f.dts);
      ok = this.#send(this.#audio, payloads, this.#ts(t, f.dts));
    }
    if (!ok) await this.#sink.drained();
  }

  #start(dts: number): void {
    if (this.#t0 !== undefined) return;
    this.#t0 = dts;
    this.#wall0 = Date.now();
  }
}
