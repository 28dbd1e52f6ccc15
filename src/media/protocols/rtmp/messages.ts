/** RTMP message type ids and builders for the protocol-control, user-control and command messages we send. */
import { type Amf, encode } from "./amf0.ts";
import type { RtmpMessage } from "./chunk.ts";

export const MSG = {
  SET_CHUNK_SIZE: 1,
  ABORT: 2,
  ACK: 3,
  USER_CONTROL: 4,
  WINDOW_ACK_SIZE: 5,
  SET_PEER_BANDWIDTH: 6,
  AUDIO: 8,
  VIDEO: 9,
  DATA_AMF3: 15,
  COMMAND_AMF3: 17,
  DATA_AMF0: 18,
  COMMAND_AMF0: 20,
} as const;

/** Chunk stream ids by convention: 2 protocol control, 3 commands, 4+ media. */
export const CSID = { CONTROL: 2, COMMAND: 3, DATA: 5, AUDIO: 6, VIDEO: 7 } as const;

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

const control = (type: number, payload: Buffer): RtmpMessage => ({
  csid: CSID.CONTROL,
  type,
  streamId: 0,
  timestamp: 0,
  payload,
});

export const setChunkSize = (n: number) => control(MSG.SET_CHUNK_SIZE, u32(n & 0x7fffffff));
export const windowAckSize = (n: number) => control(MSG.WINDOW_ACK_SIZE, u32(n));
export const ack = (n: number) => control(MSG.ACK, u32(n));
export const setPeerBandwidth = (n: number) =>
  control(MSG.SET_PEER_BANDWIDTH, Buffer.concat([u32(n), Buffer.from([2])]));
/** User Control event StreamBegin (0) / StreamEOF (1) for a message stream. */
export const streamEvent = (event: 0 | 1, streamId: number) => {
  const b = Buffer.alloc(6);
  b.writeUInt16BE(event);
  b.writeUInt32BE(streamId, 2);
  return control(MSG.USER_CONTROL, b);
};

export const command = (streamId: number, ...values: Amf[]): RtmpMessage => ({
  csid: CSID.COMMAND,
  type: MSG.COMMAND_AMF0,
  streamId,
  timestamp: 0,
  payload: encode(...values),
});

export const onStatus = (streamId: number, level: "status" | "error", code: string, description: string) =>
  command(streamId, "onStatus", 0, null, { level, code, description });
