/**
 * WHIP publisher -> hub: RTP H.264 is reassembled into access units; SPS/PPS become the AVC sequence header
 * and every unit becomes an AVC frame whose dts comes from the 90 kHz RTP clock (unwrapped, from 0).
 * WebRTC senders do not use B-frames, so pts = dts. Nothing is written before the first IDR with its
 * parameter sets, and after a loss nothing until the next IDR (the publisher is asked for one via PLI).
 */
import type { MediaStream } from "../../hub.ts";
import { avcConfigFrame, avcConfigRecord, avcNaluFrame } from "./avc-tags.ts";
import { H264Depacketizer, NAL, nalType, type RtpIn } from "./h264-rtp.ts";

export class RtpH264ToStream {
  readonly #stream: MediaStream;
  readonly #depack = new H264Depacketizer();
  readonly #requestKeyframe: () => void;
  #sps: Buffer | undefined;
  #pps: Buffer | undefined;
  #config: Buffer | undefined;
  #waitIdr = true;
  #lastTs: number | undefined;
  /** Unwrapped 90 kHz ticks since the first unit. */
  #ticks = 0;
  #lastDts = 0;
  #dropped = 0;

  constructor(stream: MediaStream, requestKeyframe: () => void) {
    this.#stream = stream;
    this.#requestKeyframe = requestKeyframe;
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
    if (this.#lastTs !== undefined) this.#ticks += (timestamp - this.#lastTs) | 0;
    this.#lastTs = timestamp;
    // Never let dts go backwards: the packager's muxer rejects non-monotonic timestamps.
    const dts = Math.max(this.#lastDts, Math.round(this.#ticks / 90));
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
