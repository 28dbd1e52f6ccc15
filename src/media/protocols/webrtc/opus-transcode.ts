/**
 * AAC -> Opus for WHEP viewers, only while some viewer of the path exists: the hub's AAC frames go to
 * `ffmpeg -f aac -i pipe:0 -c:a libopus -f rtp` (ADTS in, Opus RTP out on a loopback UDP port) and every packet
 * is handed to the subscribed viewers. The first subscriber starts ffmpeg, the last one leaving stops it.
 */
import { createSocket, type Socket } from "node:dgram";
import type { Logger } from "../../../core/logger.ts";
import { parseAudioSpecificConfig } from "../../codecs/aac.ts";
import { type FfmpegRun, QUIET, runFfmpeg } from "../../ffmpeg.ts";
import type { MediaStream, Reader } from "../../hub.ts";
import { SOUND_AAC, soundFormat } from "../flv/tag.ts";

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

type Listener = (rtp: Buffer) => void;

export class OpusTranscoder {
  readonly #listeners = new Set<Listener>();
  readonly #stream: MediaStream;
  readonly #ffmpegPath: string;
  readonly #log: Logger;
  #ff: FfmpegRun | undefined;
  #udp: Socket | undefined;
  #reader: Reader | undefined;

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
    udp.on("message", (m) => {
      for (const l of this.#listeners) l(m);
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
      ff.proc.stdin.write(Buffer.concat([adtsHeader(asc, raw.length), raw]));
    }
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
