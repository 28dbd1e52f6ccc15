/** Hub -> RTMP play: a reader's frames become audio/video messages on the player's message stream. */
import type { MediaStream } from "../../hub.ts";
import type { PathReader } from "../../path-reader.ts";
import { type AmfObject, encode, encodeEcmaArray } from "./amf0.ts";
import type { RtmpMessage } from "./chunk.ts";
import { CSID, MSG } from "./messages.ts";

/** `onMetaData({...})` as players expect it (RTMP data message, FLV script tag): the publisher's metadata. */
export const metadataBody = (stream: MediaStream): Buffer =>
  Buffer.concat([encode("onMetaData"), encodeEcmaArray(stream.metadata as AmfObject)]);

export function metadataMessage(stream: MediaStream, streamId: number): RtmpMessage {
  return { csid: CSID.DATA, type: MSG.DATA_AMF0, streamId, timestamp: 0, payload: metadataBody(stream) };
}

/**
 * Pump frames until the reader ends (no publisher back within the grace, or the player left). Timestamps are the
 * reader's: from 0, continuing across a publisher's reconnect. `send` returns false when the socket is congested;
 * we then wait for `drained` instead of buffering in memory.
 */
export async function streamToRtmp(
  reader: PathReader,
  streamId: number,
  send: (m: RtmpMessage) => boolean,
  drained: () => Promise<void>,
): Promise<void> {
  for (;;) {
    const t = await reader.next();
    if (!t) return;
    const video = t.frame.kind === "video";
    const ok = send({
      csid: video ? CSID.VIDEO : CSID.AUDIO,
      type: video ? MSG.VIDEO : MSG.AUDIO,
      streamId,
      timestamp: t.ts,
      payload: t.frame.data,
    });
    if (!ok) await drained();
  }
}
