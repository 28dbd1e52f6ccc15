import assert from "node:assert/strict";
import { test } from "node:test";
import {
  conclusionResponse,
  cookieOf,
  decodeStreamId,
  encodeStreamId,
  HS_CONCLUSION,
  inductionResponse,
  OPT,
  parseHandshake,
  REJ,
  rejection,
  rejectReason,
} from "./handshake.ts";

/** A conclusion handshake with an SRT_CMD_SID extension, laid out as libsrt sends it. */
function conclusion(streamId: string): Buffer {
  const sid = encodeStreamId(streamId);
  const b = Buffer.alloc(64 + 4 + sid.length);
  b.writeUInt32BE(0x80000000, 0);
  b.writeUInt32BE(5, 16);
  b.writeUInt32BE(HS_CONCLUSION, 36);
  b.writeUInt16BE(5, 64);
  b.writeUInt16BE(sid.length / 4, 66);
  sid.copy(b, 68);
  return b;
}

test("the Stream ID is read from a conclusion handshake (word-reversed, NUL padded)", () => {
  assert.deepEqual(encodeStreamId("abcde"), Buffer.from("dcba\0\0\0e", "latin1"));
  assert.equal(decodeStreamId(encodeStreamId("publish:live/srt1")), "publish:live/srt1");
  const hs = parseHandshake(conclusion("publish:live/x"));
  assert.deepEqual(
    [hs?.version, hs?.type, hs?.streamId, hs?.hsreq, hs?.kmreq],
    [5, HS_CONCLUSION, "publish:live/x", undefined, undefined],
  );
  assert.equal(parseHandshake(Buffer.alloc(64)), undefined, "a data packet is not a handshake");
  assert.equal(parseHandshake(Buffer.from([0x80, 0, 0, 0])), undefined, "too short");
});

test("a rejection answers the caller's socket id with Handshake Type 1000 + reason", () => {
  const req = conclusion("publish:live/x");
  req.writeUInt32BE(0x1234567, 40); // the caller's socket id
  const r = rejection(req, REJ.CONFLICT);
  assert.equal(r.length, 64, "no extensions");
  assert.equal(r.readUInt32BE(12), 0x1234567, "addressed to the caller");
  assert.equal(r.readUInt32BE(36), 2409, "libsrt's URQFailure(SRT_REJX_CONFLICT)");
  assert.equal(rejectReason(r), 1409);
  assert.equal(rejectReason(req), undefined, "a conclusion is not a rejection");
});

test("our induction answer is libsrt's HSv5 one (with the advertised key length)", () => {
  const c = conclusion("publish:live/x");
  c.writeUInt32BE(0x1234, 16 + 24); // caller's socket id
  const res = inductionResponse(c, 0xdeadbeef);
  assert.equal(res.length, 64);
  assert.equal(res.readUInt32BE(12), 0x1234, "addressed to the caller's socket");
  assert.equal(res.readUInt32BE(16), 5);
  assert.equal(res.readUInt32BE(20), 0x4a17, "SRT magic in the extension field");
  assert.equal(cookieOf(res), 0xdeadbeef);
  assert.equal(inductionResponse(c, 1, 16).readUInt32BE(20), 0x00024a17, "PBKEYLEN 16 -> 2");
});

test("the conclusion answer echoes the ISN and carries HSRSP (latencies) and KMRSP", () => {
  const c = conclusion("publish:live/x");
  c.writeUInt32BE(0x1234, 40);
  c.writeUInt32BE(777, 24);
  const km = Buffer.alloc(48, 7);
  const r = conclusionResponse(c, {
    socketId: 99,
    mtu: 1500,
    flowWindow: 8192,
    flags: OPT.TSBPDRCV | OPT.TSBPDSND,
    rcvLatency: 200,
    sndLatency: 120,
    kmrsp: km,
    peerIp: "127.0.0.1",
  });
  assert.equal(r.readUInt32BE(12), 0x1234);
  assert.equal(r.readUInt32BE(24), 777, "ISN echoed");
  assert.equal(r.readUInt32BE(20), 3, "HSREQ | KMREQ extension flags");
  assert.equal(r.readUInt32BE(40), 99);
  assert.deepEqual(
    [r.readUInt16BE(64), r.readUInt16BE(66), r.readUInt32BE(72), r.readUInt32BE(76)],
    [2, 3, 3, (200 << 16) | 120],
  );
  assert.deepEqual([r.readUInt16BE(80), r.readUInt16BE(82)], [4, 12]);
  assert.deepEqual(r.subarray(84), km);
  const back = parseHandshake(r);
  assert.equal(back?.type, HS_CONCLUSION);
});
