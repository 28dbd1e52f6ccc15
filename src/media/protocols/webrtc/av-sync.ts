/**
 * Audio/video clocks of WebRTC sessions.
 *  - PublisherClock (WHIP in): hub milliseconds for video and audio RTP timestamps. Video defines the hub clock
 *    (90 kHz ticks since the first unit); audio is placed on it through the publisher's RTCP sender reports
 *    (each maps its track's RTP clock to the shared NTP wallclock) and, until both have arrived, by arrival time.
 *  - ViewerClock (WHEP out): one origin for both tracks of a viewer, so the same hub instant gets the same
 *    media time on the 90 kHz video and the 48 kHz audio clock, and the RTP time of "now" for sender reports.
 */

/** 32-bit RTP timestamps unwrapped into ticks since the first one. */
export class RtpUnwrap {
  #last: number | undefined;
  #ticks = 0;

  get started(): boolean {
    return this.#last !== undefined;
  }

  push(ts: number): number {
    if (this.#last !== undefined) this.#ticks += (ts - this.#last) | 0;
    this.#last = ts;
    return this.#ticks;
  }

  /** Ticks of a timestamp near the last one, without moving the clock. */
  peek(ts: number): number | undefined {
    return this.#last === undefined ? undefined : this.#ticks + ((ts - this.#last) | 0);
  }
}

/** Milliseconds of a 64-bit NTP timestamp (seconds since 1900 in the high word, fraction in the low). */
export const ntpToMs = (ntp: bigint): number =>
  Number(ntp >> 32n) * 1000 + (Number(ntp & 0xffffffffn) / 2 ** 32) * 1000;

/** The NTP timestamp of an epoch-milliseconds wallclock time. */
export function msToNtp(ms: number): bigint {
  const s = Math.floor(ms / 1000);
  const frac = Math.floor(((ms - s * 1000) / 1000) * 2 ** 32);
  return (BigInt(s + 2208988800) << 32n) | BigInt(frac);
}

interface SrPoint {
  ntpMs: number;
  rtp: number;
}

/**
 * Sender-report offsets move by a few ms between reports (each pairs an NTP time with the RTP time of the last
 * packet sent): re-anchoring audio on every one would make its frame durations uneven, so only a real change
 * (a first sync, a publisher clock jump) moves it.
 */
const RESYNC_MS = 30;
const AUDIO_RATE = 48;
const VIDEO_RATE = 90;

export class PublisherClock {
  readonly #video = new RtpUnwrap();
  readonly #audio = new RtpUnwrap();
  #videoSr: SrPoint | undefined;
  #audioSr: SrPoint | undefined;
  #lastVideo: { ms: number; at: number } | undefined;
  /** hub ms = audio ticks / 48 + offset. */
  #audioOffset: number | undefined;
  /** True once audio is placed by sender reports rather than by arrival time. */
  synced = false;

  /** Hub ms of a video unit's RTP timestamp. */
  videoMs(ts: number, now = Date.now()): number {
    const ms = this.#video.push(ts) / VIDEO_RATE;
    this.#lastVideo = { ms, at: now };
    return ms;
  }

  /** Hub ms of an audio packet's RTP timestamp; undefined until video has started the clock. */
  audioMs(ts: number, now = Date.now()): number | undefined {
    if (!this.#lastVideo) return undefined;
    const ticks = this.#audio.push(ts);
    if (this.#audioOffset === undefined) {
      // Arrival time: this packet was captured about when the video unit just received was, plus the time since.
      this.#audioOffset = this.#lastVideo.ms + (now - this.#lastVideo.at) - ticks / AUDIO_RATE;
      this.#resync();
    }
    return ticks / AUDIO_RATE + this.#audioOffset;
  }

  senderReport(kind: "audio" | "video", ntp: bigint, rtp: number): void {
    const p = { ntpMs: ntpToMs(ntp), rtp };
    if (kind === "audio") this.#audioSr = p;
    else this.#videoSr = p;
    this.#resync();
  }

  #resync(): void {
    const a = this.#audioSr;
    const v = this.#videoSr;
    if (!a || !v || this.#audioOffset === undefined) return;
    // The video RTP time at the audio report's wallclock instant, then both in hub terms.
    const videoRtp = (v.rtp + Math.round((a.ntpMs - v.ntpMs) * VIDEO_RATE)) >>> 0;
    const vt = this.#video.peek(videoRtp);
    const at = this.#audio.peek(a.rtp);
    if (vt === undefined || at === undefined) return;
    const offset = vt / VIDEO_RATE - at / AUDIO_RATE;
    if (!this.synced || Math.abs(offset - this.#audioOffset) > RESYNC_MS) {
      this.#audioOffset = offset;
      this.synced = true;
    }
  }
}

const randomTs = () => Math.floor(Math.random() * 0x100000000);

/** A WHEP viewer's RTP timelines: both start at `base`, the hub ms of the first video frame sent. */
export class ViewerClock {
  base: number | undefined;
  readonly videoOffset = randomTs();
  readonly audioOffset = randomTs();
  /** Wallclock minus hub ms, fixed when the first frame goes out: maps "now" to media time for sender reports. */
  #wallMinusMedia: number | undefined;

  start(ms: number, now = Date.now()): void {
    this.base = ms;
    this.#wallMinusMedia = now - ms;
  }

  video(ms: number): number {
    return (this.videoOffset + Math.round((ms - (this.base ?? ms)) * VIDEO_RATE)) >>> 0;
  }

  audio(ms: number): number {
    return (this.audioOffset + Math.round((ms - (this.base ?? ms)) * AUDIO_RATE)) >>> 0;
  }

  /** The RTP timestamp of wallclock `now` on a track's clock, or undefined before the first frame. */
  rtpAt(kind: "audio" | "video", now = Date.now()): number | undefined {
    if (this.#wallMinusMedia === undefined) return undefined;
    const ms = now - this.#wallMinusMedia;
    return kind === "video" ? this.video(ms) : this.audio(ms);
  }
}
