import assert from "node:assert/strict";
import { test } from "node:test";
import { buildSenderReport, parseRtp, parseSenderReport } from "./packet.ts";

test("sender reports round trip now and across the NTP era wrap of February 2036", () => {
  for (const ms of [Date.UTC(2026, 11, 7, 3, 0, 0, 250), Date.UTC(2036, 1, 7, 6, 28, 15), Date.UTC(2040, 0, 1)]) {
    const sr = parseSenderReport(buildSenderReport({ ssrc: 5, ntpMs: ms, rtp: 0xfffffff0, packets: 1, octets: 2 }));
    assert.ok(sr);
    assert.ok(Math.abs(sr.ntpMs - ms) < 1, `${new Date(ms).toISOString()} read as ${new Date(sr.ntpMs).toISOString()}`);
    assert.equal(sr.rtp, 0xfffffff0);
  }
});

test("short, truncated or lying RTP/RTCP packets are undefined, never a throw", () => {
  assert.equal(parseRtp(Buffer.alloc(11)), undefined);
  const ext = Buffer.from([0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0xff, 0xff]);
  assert.equal(parseRtp(ext), undefined, "extension longer than the packet");
  const pad = Buffer.from([0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 200]);
  assert.equal(parseRtp(pad), undefined, "padding longer than the payload");
  assert.equal(parseSenderReport(Buffer.from([0x80, 200, 0xff, 0xff, 0, 0, 0, 0])), undefined);
  assert.equal(parseSenderReport(Buffer.from([0x80, 200, 0, 1])), undefined);
});
