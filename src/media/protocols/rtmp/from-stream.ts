/** Hub -> RTMP play: a reader's frames become audio/video messages on the player's message stream. */
import type { MediaStream, Reader } from "../../hub.ts";
import { type AmfObject, encode, encodeEcmaArray } from "./amf0.ts";
import type { RtmpMessage } from "./chunk.ts";
import { CSID, MSG } from "./messages.ts";

export function metadataMessage(stream: MediaStream, streamId: number): RtmpMessage {
  return {
    csid: CSID.DATA,
    type: MSG.DATA_AMF0,
    streamId,
    timestamp: 0,
    payload: Buffer.concat([encode("onMetaData"), encodeEcmaArray(stream.metadata as AmfObject)]),
  };
}

/**
 * Pump frames until the reader ends. Timestamps are rebased so the player starts at 0. `send` returns false
 * when the socket is congested; we then wait for `drained` instead of buffering in memory.
 */
export async function streamToRtmp(
  reader: Reader,
  streamId: number,
  send: (m: RtmpMessage) => boolean,
  drained: () => Promise<void>,
): Promise<void> {
  let base: number | undefined;
  for (;;) {
    const f = await reader.next();
    if (!f) return;
    if (f.kind === "data") continue;
    if (base === undefined && !f.config) base = f.dts;
    const timestamp = f.config ? 0 : Math.max(0, f.dts - (base ?? f.dts));
    const video = f.kind === "video";
    const ok = send({
      csid: video ? CSID.VIDEO : CSID.AUDIO,
      type: video ? MSG.VIDEO : MSG.AUDIO,
      streamId,
      timestamp,
      payload: f.data,
    });
    if (!ok) await drained();
  }
}
