/**
 * AAC -> Opus for WHEP viewers, only while some viewer of the path exists: the hub's AAC frames go to
 * `ffmpeg -f aac -i pipe:0 -c:a libopus -f rtp` (ADTS in, Opus RTP out on a loopback UDP port) and every packet
 * is handed to the subscribed viewers with its hub time, so each viewer stamps it on its own clock next to the
 * video. The first subscriber starts ffmpeg, the last one leaving stops it.
 *
 * Hub time of an output packet: ADTS carries no timestamps, so ffmpeg counts samples (its RTP timestamps
 * advance by the samples encoded, from a random start). Each AAC frame written is remembered with its sample
 * position (1024 samples at the stream's rate, in 48 kHz ticks) and dts; an output timestamp, relative to the
 * first, falls in one of them. Gaps in the hub's audio are therefore not smeared over later packets.
 */
import { createSocket, type Socket } from "node:dgram";
import type { Logger } from "../../../core/logger.ts";
import { parseAudioSpecificConfig } from "../../codecs/aac.ts";
import { type FfmpegRun, QUIET, runFfmpeg } from "../../ffmpeg.ts";
import type { MediaStream, Reader } from "../../hub.ts";
import { SOUND_AAC, soundFormat } from "../flv/tag.ts";
import { RtpUnwrap } from "./av-sync.ts";

const RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/** ADTS header (ISO 14496-3 1.A.2) for one raw AAC frame, from the stream's AudioSpecificConfig. */
export function adtsHeader(asc: Buffer, frameLength: number): Buffer {
  const { sampleRate, channels } = parseAudioSpecificConfig(asc);
  const profile = Math.max(1, (asc[0] as number) >> 3) - 1;
  const freq = Math.max(0, RATES.indexOf(sampleRate));
  const len = frameLength + 7;
  return Buffer.from([
    0xff,
    0xf1,
    (profile << 6) | (freq << 2) | ((channels >> 2) & 1),
    ((channels & 3) << 6) | ((len >> 11) & 3),
    (len >> 3) & 0xff,
    ((len & 7) << 5) | 0x1f,
    0xfc,
  ]);
}

export interface OpusOut {
  /** One Opus packet. */
  payload: Buffer;
  /** Hub milliseconds of its first sample (encoder delay aside). */
  ms: number;
}

type Listener = (p: OpusOut) => void;

/** Written frames remembered for timestamp mapping: a few seconds, far more than ffmpeg buffers. */
const WRITTEN_MAX = 512;

export class OpusTranscoder {
  readonly #listeners = new Set<Listener>();
  readonly #stream: MediaStream;
  readonly #ffmpegPath: string;
  readonly #log: Logger;
  #ff: FfmpegRun | undefined;
  #udp: Socket | undefined;
  #reader: Reader | undefined;
  /** Sample positions (48 kHz ticks since the first frame written) and hub dts of the frames written. */
  #written: { pos: number; dts: number }[] = [];
  #pos = 0;
  #out = new RtpUnwrap();

  constructor(stream: MediaStream, ffmpegPath: string, log: Logger) {
    this.#stream = stream;
    this.#ffmpegPath = ffmpegPath;
    this.#log = log;
  }

  get running(): boolean {
    return this.#ff !== undefined;
  }

  get subscribers(): number {
    return this.#listeners.size;
  }

  /** Returns the unsubscribe function; the first subscriber starts ffmpeg. */
  subscribe(l: Listener): () => void {
    this.#listeners.add(l);
    if (this.#listeners.size === 1) this.#start().catch((e) => this.#log.warn("opus transcoder failed", { error: e }));
    return () => {
      this.#listeners.delete(l);
      if (this.#listeners.size === 0) this.#stop();
    };
  }

  async #start(): Promise<void> {
    const udp = createSocket("udp4");
    this.#udp = udp;
    this.#written = [];
    this.#pos = 0;
    this.#out = new RtpUnwrap();
    udp.on("message", (m) => {
      // RTCP (packet types 200-204; ffmpeg sends it to port + 1 anyway) is not media. ffmpeg sets the marker
      // bit on every Opus packet, so the second byte of RTP is 128 + 111 here.
      const pt = m[1] as number;
      if (m.length <= 12 || (pt >= 200 && pt <= 204)) return;
      const cc = (m[0] as number) & 0x0f;
      const ext = ((m[0] as number) & 0x10) !== 0;
      let off = 12 + cc * 4;
      if (ext && m.length >= off + 4) off += 4 + m.readUInt16BE(off + 2) * 4;
      const ms = this.#hubMs(this.#out.push(m.readUInt32BE(4)));
      if (ms === undefined || off >= m.length) return;
      const payload = m.subarray(off);
      for (const l of this.#listeners) l({ payload, ms });
    });
    await new Promise<void>((r) => udp.bind(0, "127.0.0.1", r));
    if (this.#udp !== udp) return;
    const args = [
      ...QUIET,
      ...["-f", "aac", "-i", "pipe:0", "-vn", "-c:a", "libopus", "-b:a", "96k", "-ar", "48000", "-ac", "2"],
      ...["-application", "lowdelay", "-frame_duration", "20", "-payload_type", "111"],
      ...["-f", "rtp", `rtp://127.0.0.1:${udp.address().port}?pkt_size=1200`],
    ];
    const ff = runFfmpeg(this.#ffmpegPath, args);
    this.#ff = ff;
    // Remote "packager": an internal reader, not counted as a viewer in the stats.
    const reader = this.#stream.addReader("webrtc", "packager", { fromKeyframe: false });
    this.#reader = reader;
    for (;;) {
      const f = await reader.next();
      if (!f || this.#ff !== ff) break;
      if (f.kind !== "audio" || f.config || soundFormat(f) !== SOUND_AAC) continue;
      const asc = this.#stream.audioConfig?.data.subarray(2);
      if (!asc || asc.length < 2) continue;
      const raw = f.data.subarray(2);
      if (!ff.proc.stdin.writable) break;
      const rate = parseAudioSpecificConfig(asc).sampleRate || 48000;
      this.#written.push({ pos: this.#pos, dts: f.dts });
      if (this.#written.length > WRITTEN_MAX) this.#written.shift();
      this.#pos += (1024 * 48000) / rate;
      ff.proc.stdin.write(Buffer.concat([adtsHeader(asc, raw.length), raw]));
    }
  }

  /** Hub ms of an output packet `ticks` (48 kHz) after the first one. */
  #hubMs(ticks: number): number | undefined {
    const w = this.#written;
    for (let i = w.length - 1; i >= 0; i--) {
      const e = w[i] as { pos: number; dts: number };
      if (e.pos <= ticks) return e.dts + (ticks - e.pos) / 48;
    }
    return undefined;
  }

  #stop(): void {
    this.#reader?.close();
    this.#reader = undefined;
    this.#ff?.proc.stdin.end();
    this.#ff?.stop();
    this.#ff = undefined;
    this.#udp?.close();
    this.#udp = undefined;
  }
}
