/**
 * An SRT handshake flood against the media service in its own process: inductions from 256 source ports (callers
 * that never complete, as spoofed sources cannot) and conclusions with made-up cookies. The listener answers the
 * inductions without keeping anything, starts no process (SRT is in-process: not even for the real publisher), and
 * a real ffmpeg SRT publisher streams during the flood and after it; the process's RSS stays within a few MiB.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MediaChild, tree } from "../../bench/media/lib.ts";
import { HS_CONCLUSION, HS_INDUCTION } from "../../src/media/servers/srt/handshake.ts";
import { rssMiB, rssPeak, srtHandshake } from "./helpers/attack.ts";
import { liveNow, publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const PORTS = 256;
/** The bound: a flood costs no session, so RSS may only move by what answering datagrams costs. */
const FLOOD_OVER_BASELINE_MIB = 24;
let m: MediaChild;
let port: number;

before(async () => {
  if (!hasFfmpeg) return;
  m = await MediaChild.start({});
  port = Number(new URL(m.srt).port);
});

after(async () => {
  await m?.stop();
});

/** Processes the media service has running now. */
const children = () => tree(m.pid).length - 1;

/** Flooders on PORTS source ports: an induction and a forged conclusion each every 100 ms (5,120 datagrams/s). */
async function flood(): Promise<{ stop(): Promise<{ sent: number; answers: number }> }> {
  const socks: Socket[] = [];
  let answers = 0;
  let sent = 0;
  for (let i = 0; i < PORTS; i++) {
    const s = createSocket("udp4");
    s.on("message", () => answers++);
    s.on("error", () => {});
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
    socks.push(s);
  }
  const t = setInterval(() => {
    for (const [i, s] of socks.entries()) {
      const socketId = randomInt(1, 0x3fffffff);
      s.send(srtHandshake({ version: 4, type: HS_INDUCTION, socketId }), port, "127.0.0.1");
      // A conclusion with a cookie the server never gave: what a spoofed source can send at best.
      const streamId = `publish:live/flood${i}`;
      const cookie = randomInt(0, 0xffffffff);
      s.send(srtHandshake({ version: 5, type: HS_CONCLUSION, socketId, cookie, streamId }), port, "127.0.0.1");
      sent += 2;
    }
  }, 100);
  return {
    async stop() {
      clearInterval(t);
      await sleep(100);
      for (const s of socks) s.close();
      return { sent, answers };
    },
  };
}

test(
  "an SRT handshake flood starts no process and keeps no state; a real publisher streams during and after",
  opts,
  async () => {
    await sleep(1000);
    const baseline = rssMiB(m.pid);
    const peak = rssPeak(m.pid);
    let maxChildren = 0;
    const watch = setInterval(() => {
      maxChildren = Math.max(maxChildren, children());
    }, 50);
    let f: Awaited<ReturnType<typeof flood>> | undefined;
    try {
      f = await flood();
      await sleep(3000);
      assert.equal(children(), 0, "no process for the flood");
      // A real publisher, while the flood goes on.
      const real = publish(`${m.srt}?streamid=publish:live/srt`, 30, "mpegts");
      assert.ok(await until("the SRT publisher's playlist", () => liveNow(m.http, "live/srt")));
      await sleep(2000);
      const { sent, answers } = await f.stop();
      f = undefined;
      const peakMiB = peak.stop();
      const duringFlood = maxChildren;
      assert.equal(duringFlood, 0, "no process, not even for the real publisher");
      // The flood got its induction answers (stateless) and nothing for the forged conclusions.
      assert.ok(answers > 0 && answers <= sent / 2, `answers ${answers} for ${sent} datagrams`);
      assert.ok(await liveNow(m.http, "live/srt"), "still live after the flood");
      // After the flood: a second publisher gets its own session.
      const later = publish(`${m.srt}?streamid=publish:live/srt2`, 6, "mpegts");
      assert.ok(await until("the later publisher's playlist", () => liveNow(m.http, "live/srt2")));
      real.proc.kill("SIGINT");
      await Promise.all([real.exit, later.exit]);
      const line = `SRT flood: ${sent} datagrams from ${PORTS} ports (${answers} induction answers), baseline ${baseline.toFixed(0)} MiB, peak ${peakMiB.toFixed(0)} MiB (bound ${(baseline + FLOOD_OVER_BASELINE_MIB).toFixed(0)}), child processes during the flood at most ${duringFlood}`;
      console.log(line);
      assert.ok(peakMiB < baseline + FLOOD_OVER_BASELINE_MIB, line);
    } finally {
      clearInterval(watch);
      await f?.stop();
    }
  },
);
