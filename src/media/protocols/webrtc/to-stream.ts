/**
 * WHIP publisher -> hub.
 *  - Video: RTP H.264 is reassembled into access units; SPS/PPS become the AVC sequence header and every unit
 *    becomes an AVC frame whose dts comes from the 90 kHz RTP clock (unwrapped, from 0). WebRTC senders do not
 *    use B-frames, so pts = dts. Nothing is written before the first IDR with its parameter sets, and after a
 *    loss nothing until the next IDR (the publisher is asked for one via PLI).
 *  - Audio: each Opus RTP payload is one Opus packet (RFC 7587); it becomes an E-RTMP v2 Opus frame, after one
 *    Opus sequence start, on the video's clock (PublisherClock: RTCP sender reports, else arrival time).
 */
import type { MediaStream } from "../../hub.ts";
import { opusConfigFrame, opusHead, opusPacketFrame, opusPacketSamples } from "../flv/ex-audio.ts";
import { H264Depacketizer, NAL, nalType, type RtpIn } from "../rtp/h264.ts";
import { PublisherClock } from "./av-sync.ts";
import { avcConfigFrame, avcConfigRecord, avcNaluFrame } from "./avc-tags.ts";

export class RtpH264ToStream {
  readonly #stream: MediaStream;
  readonly #depack = new H264Depacketizer();
  readonly #requestKeyframe: () => void;
  #sps: Buffer | undefined;
  #pps: Buffer | undefined;
  #config: Buffer | undefined;
  #waitIdr = true;
  readonly #clock: PublisherClock;
  #lastDts = 0;
  #dropped = 0;

  constructor(stream: MediaStream, requestKeyframe: () => void, clock = new PublisherClock()) {
    this.#stream = stream;
    this.#requestKeyframe = requestKeyframe;
    this.#clock = clock;
  }

  push(p: RtpIn): void {
    for (const au of this.#depack.push(p)) this.#unit(au.timestamp, au.nals);
    if (this.#depack.dropped !== this.#dropped) {
      this.#dropped = this.#depack.dropped;
      this.#waitIdr = true;
      this.#requestKeyframe();
    }
  }

  #unit(timestamp: number, nals: Buffer[]): void {
    const media: Buffer[] = [];
    let idr = false;
    for (const n of nals) {
      const t = nalType(n);
      if (t === NAL.SPS) this.#sps = n;
      else if (t === NAL.PPS) this.#pps = n;
      else if (t !== NAL.AUD) {
        media.push(n);
        if (t === NAL.IDR) idr = true;
      }
    }
    // Never let dts go backwards: the packager's muxer rejects non-monotonic timestamps.
    const dts = Math.max(this.#lastDts, Math.round(this.#clock.videoMs(timestamp)));
    if (this.#sps && this.#pps) {
      const rec = avcConfigRecord(this.#sps, this.#pps);
      if (!this.#config || !rec.equals(this.#config)) {
        this.#config = rec;
        this.#stream.write(avcConfigFrame(dts, rec));
      }
    }
    if (media.length === 0) return;
    if (this.#waitIdr) {
      if (!idr || !this.#config) {
        this.#requestKeyframe();
        return;
      }
      this.#waitIdr = false;
    }
    this.#lastDts = dts;
    this.#stream.write(avcNaluFrame(dts, media, idr));
  }
}

/**
 * WebRTC Opus is always signalled as 48 kHz stereo (RFC 7587 7); the decoder outputs two channels whatever the
 * encoder used. RTP carries no pre-skip: the timestamps already place the audio, so nothing is trimmed.
 */
const WEBRTC_OPUS_HEAD = opusHead({ channels: 2, preSkip: 0, inputSampleRate: 48000 });

export class RtpOpusToStream {
  readonly #stream: MediaStream;
  readonly #clock: PublisherClock;
  #lastDts = Number.NEGATIVE_INFINITY;
  /** Packets dropped: before video started, malformed, or not after the previous one. */
  dropped = 0;

  /**
   * Created when the publisher's audio track is negotiated: the sequence start goes in then, before any media,
   * so outputs that pick their tracks at the first keyframe see the audio even when its first packet arrives
   * after that keyframe (the Opus config of WebRTC is fixed; nothing in the packets changes it).
   */
  constructor(stream: MediaStream, clock: PublisherClock) {
    this.#stream = stream;
    this.#clock = clock;
    stream.write(opusConfigFrame(0, WEBRTC_OPUS_HEAD));
  }

  push(p: RtpIn): void {
    // Packets wait for the video's first IDR and config: audio alone first would make the stream look audio-only.
    if (!this.#stream.videoConfig) {
      this.dropped++;
      return;
    }
    const ms = this.#clock.audioMs(p.timestamp);
    // A retransmission, a reordered packet or a sender-report re-anchoring backwards: later audio wins.
    if (ms === undefined || opusPacketSamples(p.payload) === 0 || Math.round(ms) <= this.#lastDts) {
      this.dropped++;
      return;
    }
    const dts = Math.round(ms);
    this.#lastDts = dts;
    this.#stream.write(opusPacketFrame(dts, p.payload));
  }
}
