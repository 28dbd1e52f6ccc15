import assert from "node:assert/strict";
import { test } from "node:test";
import { msToNtp, ntpToMs, PublisherClock, RtpUnwrap, ViewerClock } from "./av-sync.ts";

test("RTP unwrap across the 32-bit wrap; NTP <-> ms round trip", () => {
  const u = new RtpUnwrap();
  assert.equal(u.peek(5), undefined);
  assert.equal(u.push(0xffffff00), 0);
  assert.equal(u.push(0x100), 0x200);
  assert.equal(u.peek(0xfffffff0), 0x200 - 0x110, "a timestamp just before the last one is negative distance");
  const now = 1_796_000_000_123.5;
  assert.ok(Math.abs(ntpToMs(msToNtp(now)) - (now + 2208988800000)) < 0.001);
});

/** Publisher clocks: video 90 kHz from vBase, audio 48 kHz from aBase, both started at wallclock w0. */
function publisher(vBase: number, aBase: number, w0: number) {
  return {
    v: (ms: number) => (vBase + ms * 90) >>> 0,
    a: (ms: number) => (aBase + ms * 48) >>> 0,
    ntp: (ms: number) => msToNtp(w0 + ms),
  };
}

test("WHIP clock: audio by arrival at first, then by sender reports to the video's media time", () => {
  const p = publisher(0xfffff000, 1234, 1_796_000_000_000);
  const c = new PublisherClock();
  assert.equal(c.audioMs(p.a(0), 0), undefined, "no audio before video starts the clock");
  assert.equal(c.videoMs(p.v(0), 1000), 0);
  // Audio of media time 40 ms arrives 250 ms late (a slow audio path): arrival places it at 290.
  const early = c.audioMs(p.a(40), 1290) as number;
  assert.equal(early, 290);
  assert.equal(c.synced, false);
  assert.equal(c.videoMs(p.v(1000), 2000), 1000);
  c.senderReport("video", p.ntp(1000), p.v(1000));
  c.senderReport("audio", p.ntp(980), p.a(980));
  assert.equal(c.synced, true);
  assert.equal(c.audioMs(p.a(1000), 2250), 1000, "the same media instant as video");
  // A report a few ms off does not move the audio (uneven frame durations); a jump does.
  c.senderReport("audio", p.ntp(1500 + 5), p.a(1500));
  assert.equal(c.audioMs(p.a(1020), 2270), 1020);
  c.senderReport("audio", p.ntp(2000 + 200), p.a(2000));
  assert.equal(c.audioMs(p.a(1040), 2290), 1040 + 200, "audio reported 200 ms later on the wallclock");
});

test("WHEP clock: one origin for both tracks; sender-report RTP times follow the same mapping", () => {
  const c = new ViewerClock();
  assert.equal(c.rtpAt("video", 0), undefined);
  c.start(5000, 100_000);
  assert.equal(c.video(5000), c.videoOffset);
  assert.equal(c.audio(5000), c.audioOffset);
  assert.equal((c.video(5040) - c.videoOffset) >>> 0, 3600);
  assert.equal((c.audio(5020) - c.audioOffset) >>> 0, 960);
  assert.equal(((c.audio(4980) - c.audioOffset) | 0) as number, -960, "audio just before the first video frame");
  // 2 s of wallclock after the start is media time 7000 on both clocks.
  assert.equal(c.rtpAt("video", 102_000), c.video(7000));
  assert.equal(c.rtpAt("audio", 102_000), c.audio(7000));
});
