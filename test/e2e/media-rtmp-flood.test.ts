/**
 * Hostile RTMP peers against the media service in its own process (so its RSS is its own): connections that park
 * partial giant messages on many chunk streams, before `connect` and after an admitted `publish`, are closed at
 * their byte budget; a real ffmpeg publisher streams during and after; the process's RSS stays under its bound
 * and comes back down once the attackers are gone.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MediaChild } from "../../bench/media/lib.ts";
import { parkPartials, rssMiB, rssPeak, rtmpHandshake } from "./helpers/attack.ts";
import { liveNow, publish, until } from "./helpers/media-tools.ts";
import { RtmpPublisher } from "./helpers/rtmp-publisher.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const MiB = 1024 * 1024;
/** media.rtmp defaults: what an admitted publisher and all connections together may hold. */
const CONNECTION_BUFFER = 12 * MiB;
const TOTAL_BUFFER = 256 * MiB;
/** The bound under attack: the shared budget, plus what the process needs beyond it (copies, JS objects, GC lag). */
const PEAK_OVER_BASELINE_MIB = TOTAL_BUFFER / MiB + 96;
/** Once the attackers are gone: back within this of the baseline. */
const AFTER_OVER_BASELINE_MIB = 64;
let m: MediaChild;
let port: number;

before(async () => {
  if (!hasFfmpeg) return;
  m = await MediaChild.start({});
  port = Number(new URL(m.rtmp).port);
});

after(async () => {
  await m?.stop();
});

test(
  "partial giant messages on many chunk streams (before connect and after publish) are cut at their budget; ffmpeg publishes during and after; RSS stays bounded",
  opts,
  async () => {
    // Settle, then the baseline.
    await sleep(1000);
    const baseline = rssMiB(m.pid);
    const real = publish(`${m.rtmp}/live/real`, 30);
    await until("the real publisher's playlist", () => liveNow(m.http, "live/real"));
    const peak = rssPeak(m.pid);

    // Before connect: a header declaring 16 MiB is over the 64 KiB a connection holds until it is admitted.
    const pre = await Promise.all([0, 1, 2].map(() => rtmpHandshake(port)));
    const preSent = await Promise.all(
      pre.map((a) =>
        parkPartials(a.socket, { first: 3, streams: 60, length: 0xffffff, chunk: 128, maxBytes: 64 * MiB }),
      ),
    );
    // Declared lengths within the limit, but 60 KiB reserved on each chunk stream: over it by the second.
    const pre2 = await Promise.all([0, 1, 2].map(() => rtmpHandshake(port)));
    await Promise.all(
      pre2.map((a) => parkPartials(a.socket, { first: 3, streams: 60, length: 60 * 1024, chunk: 128, maxBytes: MiB })),
    );
    const preClosedMs = await Promise.all([...pre, ...pre2].map((a) => a.closed));
    for (const ms of preClosedMs) assert.ok(ms < 5000, `closed before connect in ${ms} ms`);

    // After publish: 24 admitted publishers park 8 MiB messages, wave A on 56 chunk streams each (cut at the
    // 12 MiB a connection may hold, counted in 256 KiB blocks), wave B on 2 (about 12 MiB each, 288 MiB together:
    // over the 256 MiB all connections may hold, so the largest holders are evicted too).
    const wave = async (name: string, streams: number) => {
      const atk = await Promise.all(
        Array.from({ length: 24 }, (_, i) => RtmpPublisher.publish(`${m.rtmp}/live/${name}${i}`)),
      );
      const closed = atk.map((p) => new Promise<void>((r) => p.socket.once("close", () => r())));
      const park = { first: 8, streams, length: 8 * MiB, chunk: 60_000, maxBytes: 64 * MiB };
      const sent = await Promise.all(atk.map((p) => parkPartials(p.socket, park)));
      await Promise.all(closed);
      return sent;
    };
    const sent = [...(await wave("a", 56)), ...(await wave("b", 2))];
    for (const s of sent) assert.ok(s < 64 * MiB, `an attacker was cut off after ${s} bytes`);
    assert.ok(await liveNow(m.http, "live/real"), "the real publisher is live during the attack");
    const peakMiB = peak.stop();

    // Attackers gone: memory comes back (buffers are freed by the GC, so give it a moment).
    const back = await until(
      "RSS back near the baseline",
      async () => {
        const r = rssMiB(m.pid);
        return r < baseline + AFTER_OVER_BASELINE_MIB ? r : false;
      },
      30_000,
    ).catch(() => rssMiB(m.pid));
    const after = publish(`${m.rtmp}/live/after`, 6);
    assert.ok(await until("the later publisher's playlist", () => liveNow(m.http, "live/after")));
    real.proc.kill("SIGINT");
    await Promise.all([real.exit, after.exit]);
    const line = `RTMP flood: baseline ${baseline.toFixed(0)} MiB, peak ${peakMiB.toFixed(0)} MiB (bound ${(baseline + PEAK_OVER_BASELINE_MIB).toFixed(0)}), after ${back.toFixed(0)} MiB; pre-connect attackers sent ${preSent.map((s) => s).join("/")} bytes before the close; admitted attackers sent ${Math.min(...sent)}..${Math.max(...sent)} bytes each (budget ${CONNECTION_BUFFER})`;
    console.log(line);
    assert.ok(peakMiB < baseline + PEAK_OVER_BASELINE_MIB, line);
    assert.ok(back < baseline + AFTER_OVER_BASELINE_MIB, line);
  },
);

test("a connection that sends nothing after the handshake is closed within the handshake timeout", opts, async () => {
  const idle = await rtmpHandshake(port);
  const ms = await idle.closed;
  assert.ok(ms >= 9000 && ms < 13_000, `closed after ${ms} ms (media.rtmp.handshakeTimeoutSeconds: 10)`);
});
