/** RTMP publish -> hub: audio/video/data messages of a publishing client become frames of its MediaStream. */
import type { MediaStream } from "../../hub.ts";
import { audioFrame, videoFrame } from "../flv/tag.ts";
import { type AmfObject, decodeAll } from "./amf0.ts";
import type { RtmpMessage } from "./chunk.ts";
import { MSG } from "./messages.ts";

export function rtmpToStream(m: RtmpMessage, stream: MediaStream): void {
  if (m.type === MSG.VIDEO) {
    if (m.payload.length >= 2) stream.write(videoFrame(m.timestamp, m.payload));
  } else if (m.type === MSG.AUDIO) {
    if (m.payload.length >= 2) stream.write(audioFrame(m.timestamp, m.payload));
  } else if (m.type === MSG.DATA_AMF0 || m.type === MSG.DATA_AMF3) {
    const payload = m.type === MSG.DATA_AMF3 ? m.payload.subarray(1) : m.payload;
    const values = decodeAll(payload);
    // ffmpeg and OBS send `@setDataFrame("onMetaData", {...})`; players expect plain `onMetaData({...})`.
    if (values[0] === "@setDataFrame") values.shift();
    if (values[0] === "onMetaData" && values[1] && typeof values[1] === "object") {
      stream.metadata = values[1] as AmfObject;
    }
  }
}
