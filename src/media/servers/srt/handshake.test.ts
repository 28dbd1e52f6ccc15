import assert from "node:assert/strict";
import { test } from "node:test";
import {
  cookieOf,
  decodeStreamId,
  encodeStreamId,
  HS_CONCLUSION,
  inductionRequest,
  inductionResponse,
  parseHandshake,
  publishPath,
  REJ,
  rejection,
  rejectReason,
  withCookie,
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
  assert.deepEqual(parseHandshake(conclusion("publish:live/x")), {
    version: 5,
    type: HS_CONCLUSION,
    streamId: "publish:live/x",
  });
  assert.equal(parseHandshake(Buffer.alloc(64)), undefined, "a data packet is not a handshake");
  assert.equal(parseHandshake(Buffer.from([0x80, 0, 0, 0])), undefined, "too short");
});

test("publish paths from Stream IDs; reads are refused (SRT is ingest only)", () => {
  assert.equal(publishPath("publish:live/cam1"), "live/cam1");
  assert.equal(publishPath("#!::r=live/cam1,m=publish"), "live/cam1");
  assert.equal(publishPath("live/cam1"), "live/cam1");
  assert.equal(publishPath("read:live/cam1"), undefined);
  assert.equal(publishPath("#!::r=live/cam1,m=request"), undefined);
  assert.equal(publishPath(undefined), undefined);
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

test("our induction answer is libsrt's HSv5 one; the relay's induction for ffmpeg is an HSv4 caller's", () => {
  const c = conclusion("publish:live/x");
  c.writeUInt32BE(0x1234, 16 + 24); // caller's socket id
  const res = inductionResponse(c, 0xdeadbeef);
  assert.equal(res.length, 64);
  assert.equal(res.readUInt32BE(12), 0x1234, "addressed to the caller's socket");
  assert.equal(res.readUInt32BE(16), 5);
  assert.equal(res.readUInt32BE(20), 0x4a17, "SRT magic in the extension field");
  assert.equal(cookieOf(res), 0xdeadbeef);
  const req = inductionRequest(withCookie(c, 7));
  assert.deepEqual(
    [req.length, req.readUInt32BE(12), req.readUInt32BE(16), req.readUInt32BE(20), req.readUInt32BE(36), cookieOf(req)],
    [64, 0, 4, 2, 1, 0],
  );
  assert.equal(cookieOf(withCookie(c, 7)), 7);
  assert.equal(cookieOf(c), 0, "withCookie copies");
});
