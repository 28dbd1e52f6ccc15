import assert from "node:assert/strict";
import { test } from "node:test";
import {
  decodeStreamId,
  encodeStreamId,
  HS_CONCLUSION,
  parseHandshake,
  publishPath,
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
