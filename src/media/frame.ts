/** The unit every protocol reads from and writes to the stream hub (hub.ts); a plain type so codecs need not import the hub. */

/** One FLV-style media frame: the tag body exactly as RTMP carried it (codec headers included). */
export interface Frame {
  kind: "video" | "audio" | "data";
  /** Decode timestamp in milliseconds (RTMP/FLV time base). */
  dts: number;
  /** Tag body (for video: frame-type/codec byte, AVCPacketType, composition time, payload). */
  data: Buffer;
  keyframe: boolean;
  /** AVC sequence header / AAC AudioSpecificConfig / enhanced-RTMP SequenceStart: codec configuration, not media. */
  config: boolean;
}
