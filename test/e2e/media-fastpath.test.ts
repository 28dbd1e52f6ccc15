/**
 * The media HTTP server's fast path (core/http/fast.ts, hls.ts `fastStreamFile`) with a real ffmpeg publisher:
 * cached playlists and the MPD are answered as complete bytes with the same body and headers node:http's path
 * gives (a `Connection: close` request always takes that path), 304 and HEAD included; a blocking reload that must
 * wait is held on the fast path (requests pipelined behind it answered after it, in order); refused reloads and
 * per-session queries still go through node:http and get its answers. Last, a CDN edge node in front of it (issue 14):
 * ffmpeg plays through the edge, segments become hits, concurrent LL-HLS blocking reloads make one upstream request.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { cdnSchema } from "../../src/cdn/config.ts";
import { EdgeNode } from "../../src/cdn/node.ts";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { bodyOf, sendRaw, statusOf } from "../../src/test/raw-http.ts";
import { publish, runTool, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const PATH = "live/fast";
let m: MediaServer;
let pub: ReturnType<typeof publish> | undefined;

before(async () => {
  if (!hasFfmpeg) return;
  const media = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 } };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger);
  pub = publish(`${m.rtmpUrl}/${PATH}`, 60);
  await until("a playlist with segments", async () => {
    const r = await fetch(`${m.httpUrl}/${PATH}/stream.m3u8`);
    return r.status === 200 && /^seg\d+\.m4s$/m.test(await r.text());
  });
});

after(async () => {
  pub?.proc.kill("SIGKILL");
  await pub?.exit;
  await m?.close();
});

const port = () => Number(new URL(m.httpUrl).port);
const complete = (a: string) => {
  const head = a.indexOf("\r\n\r\n");
  const len = Number(/\r\ncontent-length: (\d+)/i.exec(a)?.[1] ?? -1);
  return head >= 0 && (len < 0 || a.length - head - 4 >= len);
};
/** One request on a fresh keep-alive connection (fast path when it can), or with `Connection: close` (node:http). */
const raw = (target: string, extra = "", close = false) =>
  sendRaw(
    port(),
    `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fast-test\r\n${extra}${close ? "Connection: close\r\n" : ""}\r\n`,
    { until: close ? undefined : complete, waitMs: 10_000 },
  );
const headers = (a: string) =>
  Object.fromEntries(
    a
      .slice(0, a.indexOf("\r\n\r\n"))
      .split("\r\n")
      .slice(1)
      .map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
  );
const SAME = ["content-type", "content-length", "cache-control", "etag", "access-control-allow-origin"];

test(
  "playlists and the MPD: the fast path answers with node:http's body and headers, at the same version",
  opts,
  async () => {
    for (const file of ["stream.m3u8", "stream.m3u8?_HLS_skip=YES", "index.m3u8", "index.mpd"]) {
      const target = `/${PATH}/${file}`;
      const { fast, slow } = await until(`${file} at one version both ways`, async () => {
        const before = m.http.stats.fast;
        const f = await raw(target);
        const fastCount = m.http.stats.fast - before;
        const s = await raw(target, "", true);
        return headers(f).etag === headers(s).etag && fastCount === 1 && { fast: f, slow: s };
      });
      assert.equal(statusOf(fast), 200, file);
      assert.equal(bodyOf(fast), bodyOf(slow), file);
      const [hf, hs] = [headers(fast), headers(slow)];
      for (const h of SAME) assert.equal(hf[h], hs[h], `${file}: ${h}`);
      assert.ok(hf.date, "a Date header");
      assert.match(hs.connection ?? "", /close/i, "the Connection: close request took node:http's path");
    }
  },
);

test("If-None-Match gets 304 and HEAD the head only, on the fast path", opts, async () => {
  const target = `/${PATH}/stream.m3u8`;
  const before = m.http.stats.fast;
  const first = await raw(target);
  const etag = headers(first).etag as string;
  const again = await raw(target, `If-None-Match: ${etag}\r\n`);
  // The timeline may have moved on between the two (a new part): then it is a fresh 200.
  if (statusOf(again) === 304) {
    assert.equal(bodyOf(again), "");
    assert.equal(headers(again).etag, etag);
    assert.equal(headers(again)["access-control-allow-origin"], "*");
  } else assert.notEqual(headers(again).etag, etag);
  const head = await sendRaw(port(), `HEAD ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, {
    until: (a) => a.includes("\r\n\r\n"),
  });
  assert.equal(statusOf(head), 200);
  assert.ok(Number(headers(head)["content-length"]) > 0);
  assert.equal(bodyOf(head), "");
  assert.equal(m.http.stats.fast - before, 3);
});

const nextMsn = async () => {
  const pl = await (await fetch(`${m.httpUrl}/${PATH}/stream.m3u8`)).text();
  return Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(pl)?.[1]) + (pl.match(/^seg\d+\.m4s$/gm)?.length ?? 0);
};

test(
  "a blocking reload that must wait is held on the fast path; pipelined requests behind it come after it",
  opts,
  async () => {
    const msn = await nextMsn();
    const before = { ...m.http.stats };
    // The segment after the last listed one: held until it is there, then answered, all on the fast path.
    const held = await raw(`/${PATH}/stream.m3u8?_HLS_msn=${msn + 1}`);
    assert.equal(statusOf(held), 200);
    assert.match(bodyOf(held), new RegExp(`seg${msn}\\.m4s`));
    assert.equal(m.http.stats.fast, before.fast + 1);
    assert.equal(m.http.stats.handedOff, before.handedOff);
    // Pipelined: a held reload, then a plain MPD request on the same connection: answered in that order.
    const next = await nextMsn();
    const req = (t: string) => `GET ${t} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fast-test\r\n\r\n`;
    const both = await sendRaw(port(), req(`/${PATH}/stream.m3u8?_HLS_msn=${next + 1}`) + req(`/${PATH}/index.mpd`), {
      until: (a) => a.includes("</MPD>"),
      waitMs: 15_000,
    });
    const playlistAt = both.indexOf("#EXTM3U");
    assert.ok(playlistAt > 0 && playlistAt < both.indexOf("<MPD"), "the held playlist is answered before the MPD");
    assert.match(both, new RegExp(`seg${next}\\.m4s`));
    // A client that leaves while held: its wait ends and the server goes on serving.
    await sendRaw(port(), req(`/${PATH}/stream.m3u8?_HLS_msn=${(await nextMsn()) + 2}`), { waitMs: 100 });
    assert.equal(statusOf(await raw(`/${PATH}/stream.m3u8`)), 200);
  },
);

test("refused blocking reloads and other queries take node:http's path", opts, async () => {
  const msn = await nextMsn();
  const before = { ...m.http.stats };
  // Far beyond the advance limit: 400 at once.
  assert.equal(statusOf(await raw(`/${PATH}/stream.m3u8?_HLS_msn=${msn + 1000}`)), 400);
  // Malformed, per-session and unknown queries.
  assert.equal(statusOf(await raw(`/${PATH}/stream.m3u8?_HLS_msn=x`)), 400);
  assert.equal(statusOf(await raw(`/${PATH}/stream.m3u8?_HLS_part=1`)), 200);
  assert.match(bodyOf(await raw(`/${PATH}/index.m3u8?x=1`)), /^#EXTM3U/);
  assert.equal(statusOf(await raw(`/${PATH}/index.mpd?sig=bad`)), 200);
  // A malformed stream path and no stream at all: node:http's 400 and 404.
  assert.equal(statusOf(await raw("/live/%ff/stream.m3u8")), 400);
  assert.equal(statusOf(await raw("/live/none/stream.m3u8")), 404);
  assert.equal(m.http.stats.fast, before.fast, "none of these was answered on the fast path");
  assert.ok(m.http.stats.handedOff - before.handedOff >= 7);
  // A blocking reload for what already exists is answered at once on the fast path.
  const now = await raw(`/${PATH}/stream.m3u8?_HLS_msn=${msn - 1}`);
  assert.equal(statusOf(now), 200);
  assert.equal(m.http.stats.fast, before.fast + 1);
});

test(
  "through a CDN edge: ffmpeg plays the HLS, segments are hits, concurrent LL-HLS blocking reloads are coalesced",
  opts,
  async () => {
    const edge = new EdgeNode({
      config: cdnSchema.parse({ port: 0, region: "media-edge" }),
      origin: m.httpUrl,
      log: silentLogger,
    });
    const base = await edge.start();
    try {
      // Not spawnSync: the edge runs in this process and must keep answering.
      const played = await runTool("ffmpeg", [
        ...["-hide_banner", "-loglevel", "error", "-i", `${base}/${PATH}/index.m3u8`],
        ...["-t", "2", "-f", "null", "-"],
      ]);
      assert.equal(played.code, 0, played.err);
      const pl = await (await fetch(`${base}/${PATH}/stream.m3u8`)).text();
      const seg = pl.match(/^seg\d+\.m4s$/gm)?.at(-1) as string;
      await fetch(`${base}/${PATH}/${seg}`).then((r) => r.arrayBuffer());
      const again = await fetch(`${base}/${PATH}/${seg}`);
      assert.equal(again.headers.get("x-cache"), "HIT");
      await again.arrayBuffer();
      // 20 players asking for the next part at once: one upstream request, all 20 answered with it.
      // The segment after the one being written: held by the origin until it exists (a blocking reload).
      const msn = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(pl)?.[1]) + (pl.match(/^seg\d+\.m4s$/gm)?.length ?? 0) + 1;
      const before = edge.stats.originRequests;
      const url = `${base}/${PATH}/stream.m3u8?_HLS_msn=${msn}&_HLS_part=0`;
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => fetch(url).then(async (r) => [r.status, await r.text()] as const)),
      );
      for (const [status, text] of answers) {
        assert.equal(status, 200);
        assert.equal(text, answers[0][1]);
      }
      assert.equal(edge.stats.originRequests - before, 1);
    } finally {
      await edge.close();
    }
  },
);
