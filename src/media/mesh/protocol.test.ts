/** The mesh's signalling frames: what a viewer may send, and the reason anything else is refused. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseClientMessage } from "./protocol.ts";

const id = "0123456789abcdef";

test("well-formed frames parse", () => {
  assert.deepEqual(
    parseClientMessage(JSON.stringify({ t: "signal", to: id, data: { sdp: { type: "answer", sdp: "v=0" } } })),
    {
      t: "signal",
      to: id,
      data: { sdp: { type: "answer", sdp: "v=0" } },
    },
  );
  const candidate = { candidate: "candidate:1 1 udp 1 10.0.0.1 5000 typ host", sdpMid: "0", sdpMLineIndex: 0 };
  assert.deepEqual(parseClientMessage(JSON.stringify({ t: "signal", to: id, data: { candidate, extra: 1 } })), {
    t: "signal",
    to: id,
    data: { candidate },
  });
  assert.deepEqual(parseClientMessage('{"t":"stats","peer":5,"http":7,"rejected":0}'), {
    t: "stats",
    peer: 5,
    http: 7,
    rejected: 0,
  });
  assert.deepEqual(parseClientMessage(`{"t":"bad","id":"${id}"}`), { t: "bad", id });
});

test("anything else is a reason, never a throw", () => {
  for (const bad of [
    "",
    "{",
    "null",
    "[]",
    '"x"',
    '{"t":"nope"}',
    '{"t":"signal","to":"x","data":{}}',
    `{"t":"signal","to":"${id}","data":[]}`,
    `{"t":"signal","to":"${id}"}`,
    `{"t":"signal","to":"${id}","data":{}}`,
    `{"t":"signal","to":"${id}","data":{"sdp":{}}}`,
    `{"t":"signal","to":"${id}","data":{"sdp":{"type":"x","sdp":"v=0"}}}`,
    `{"t":"signal","to":"${id}","data":{"sdp":[[[[]]]]}}`,
    `{"t":"signal","to":"${id}","data":{"candidate":{"candidate":{"a":[]}}}}`,
    `{"t":"signal","to":"${id}","data":{"candidate":{"candidate":"","sdpMLineIndex":-1}}}`,
    '{"t":"stats","peer":-1,"http":0,"rejected":0}',
    '{"t":"stats","peer":1.5,"http":0,"rejected":0}',
    '{"t":"stats","peer":1e300,"http":0,"rejected":0}',
    '{"t":"stats","peer":"1","http":0,"rejected":0}',
    '{"t":"bad","id":"../../x"}',
    '{"__proto__":{"t":"stats"}}',
  ])
    assert.equal(typeof parseClientMessage(bad), "string", bad);
});
