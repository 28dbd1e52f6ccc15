/** Hub -> FLV byte stream: a reader's frames written to ffmpeg's stdin (`-f flv -i pipe:0`), paced by drain. */
import type { Writable } from "node:stream";
import type { Frame } from "../../frame.ts";
import type { MediaStream, Reader } from "../../hub.ts";
import { SOUND_EX_HEADER } from "./ex-audio.ts";
import { flvHeader, flvTag, soundFormat, tagType } from "./tag.ts";

/** Pump until the reader ends or the pipe closes. Timestamps start at 0 (the first media frame). */
export async function streamToFlv(stream: MediaStream, reader: Reader, out: Writable): Promise<void> {
  let closed = false;
  out.once("close", () => {
    closed = true;
  });
  out.on("error", () => {
    closed = true;
  });
  const write = async (b: Buffer) => {
    if (closed || !out.writable) return;
    if (!out.write(b))
      await new Promise<void>((r) => {
        // Both listeners go once either fires: a long stream under backpressure would pile them up otherwise.
        const done = () => {
          out.off("drain", done);
          out.off("close", done);
          r();
        };
        out.once("drain", done);
        out.once("close", done);
      });
  };
  // ffmpeg 5.1's FLV demuxer knows no E-RTMP audio (a WHIP publisher's Opus): one such stream fails its whole
  // `-c copy`, so that audio is left out and recordings/restreams carry the video alone.
  const ffmpegReads = (f: Frame | undefined) => f !== undefined && soundFormat(f) !== SOUND_EX_HEADER;
  await write(flvHeader(ffmpegReads(stream.audioConfig), !!stream.videoConfig));
  let base: number | undefined;
  const send = (f: Frame) => {
    if (base === undefined && !f.config) base = f.dts;
    return write(flvTag(tagType(f), f.config ? 0 : f.dts - (base ?? f.dts), f.data));
  };
  for (;;) {
    const f = await reader.next();
    if (!f || closed) break;
    if (f.kind === "video" || (f.kind === "audio" && ffmpegReads(f))) await send(f);
  }
  if (!closed) out.end();
}

/** Resolves once both codec headers are in, or after `ms` with whatever arrived (an audio-only or video-only path). */
export async function configsReady(stream: MediaStream, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(stream.videoConfig && stream.audioConfig) && Date.now() < end && !stream.ended)
    await new Promise((r) => setTimeout(r, 50));
}
