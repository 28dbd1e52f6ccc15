import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { configSchema } from "../../config.ts";
import { silentLogger } from "../../core/logger.ts";
import { globToRegExp, isLoopbackIp, MediaAuth, srtTarget } from "./auth.ts";
import { signManifest, signPlaylist } from "./http.ts";
import { parseTtl } from "./sign.ts";

const dir = mkdtempSync(join(tmpdir(), "ami-media-auth-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const auth = (media: Record<string, unknown> = {}) =>
  new MediaAuth(configSchema.parse({ media }).media, dir, silentLogger);

test("path rules: exact name, then the most literal glob, then publish key / read any", () => {
  assert.ok(globToRegExp("live/*").test("live/a"));
  assert.ok(!globToRegExp("live/*").test("live/a/b"));
  assert.ok(globToRegExp("live/**").test("live/a/b"));
  const a = auth({
    paths: { "**": { publish: "any" }, "live/*": { read: "signed" }, "live/open": { publish: "none" } },
  });
  assert.deepEqual(a.rule("live/x"), { publish: "key", read: "signed" });
  assert.deepEqual(a.rule("live/open"), { publish: "none", read: "any" });
  assert.deepEqual(a.rule("other/x/y"), { publish: "any", read: "any" });
  assert.deepEqual(auth().rule("x"), { publish: "key", read: "any" });
});

test("publish: loopback trust, given keys are always checked, keys are per path", async () => {
  const a = auth();
  const { key } = a.keys.create("live/cam");
  const req = { action: "publish", protocol: "rtmp" } as const;
  assert.equal((await a.check({ ...req, path: "live/cam", ip: "::ffff:127.0.0.1" })).ok, true);
  assert.deepEqual(await a.check({ ...req, path: "live/cam", ip: "10.0.0.2" }), {
    ok: false,
    status: 401,
    reason: "publishing to 'live/cam' needs a stream key (ami-streams stream key create --path live/cam)",
  });
  assert.equal((await a.check({ ...req, path: "live/cam", ip: "10.0.0.2", key })).ok, true);
  assert.equal((await a.check({ ...req, path: "live/other", ip: "10.0.0.2", key })).ok, false);
  assert.equal((await a.check({ ...req, path: "live/cam", ip: "127.0.0.1", key: "sk_nope" })).ok, false);
  assert.ok(isLoopbackIp("::1") && isLoopbackIp("127.3.4.5") && !isLoopbackIp("::ffff:10.0.0.1"));
});

test("RTMP and SRT targets: the forms ffmpeg, OBS and SRT callers send", () => {
  const a = auth();
  const { key } = a.keys.create("live/cam1");
  assert.deepEqual(a.rtmpTarget("live", "cam1?key=K"), { path: "live/cam1", key: "K" });
  assert.deepEqual(a.rtmpTarget("live", `cam1/${key}`), { path: "live/cam1", key });
  assert.deepEqual(a.rtmpTarget("live", key), { path: "live/cam1", key });
  assert.deepEqual(a.rtmpTarget("live", "sk_revoked"), { path: "live", key: "sk_revoked" });
  assert.deepEqual(a.rtmpTarget("live", "cam2"), { path: "live/cam2", key: undefined });
  const pk = (s: string) => {
    const t = srtTarget(s);
    return t && { mode: t.mode, path: t.path, key: t.key, query: t.query.toString() };
  };
  assert.deepEqual(pk("publish:live/cam1:K"), { mode: "publish", path: "live/cam1", key: "K", query: "" });
  assert.deepEqual(pk("publish:live/cam1"), { mode: "publish", path: "live/cam1", key: undefined, query: "" });
  assert.deepEqual(pk("live/cam1"), { mode: "publish", path: "live/cam1", key: undefined, query: "" });
  assert.deepEqual(pk("#!::r=live/cam1,m=publish,u=K"), { mode: "publish", path: "live/cam1", key: "K", query: "" });
  assert.deepEqual(pk("read:live/cam1"), { mode: "read", path: "live/cam1", key: undefined, query: "" });
  assert.deepEqual(pk("read:live/cam1?exp=1&sig=x"), {
    mode: "read",
    path: "live/cam1",
    key: undefined,
    query: "exp=1&sig=x",
  });
  assert.deepEqual(pk("#!::r=live/cam1,m=request"), { mode: "read", path: "live/cam1", key: undefined, query: "" });
  assert.equal(srtTarget("#!::r=live/cam1,m=bidirectional"), undefined);
  assert.equal(srtTarget("play:live/cam1"), undefined);
});

test("signatures travel into playlist and manifest URIs; ttl parsing", () => {
  const q = "exp=1&sig=abc";
  assert.equal(
    signPlaylist('#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXT-X-PART:URI="part3.m4s"\nseg1.m4s\n', q),
    '#EXTM3U\n#EXT-X-MAP:URI="init.mp4?exp=1&sig=abc"\n#EXT-X-PART:URI="part3.m4s?exp=1&sig=abc"\nseg1.m4s?exp=1&sig=abc\n',
  );
  assert.equal(
    signManifest('<SegmentTemplate initialization="init.mp4" media="seg$Number$.m4s">', q),
    '<SegmentTemplate initialization="init.mp4?exp=1&amp;sig=abc" media="seg$Number$.m4s?exp=1&amp;sig=abc">',
  );
  assert.equal(parseTtl("1h"), 3600);
  assert.equal(parseTtl("90"), 90);
  assert.equal(parseTtl("2d"), 172800);
  assert.equal(parseTtl("soon"), undefined);
  const a = auth();
  const exp = Math.floor(Date.now() / 1000) + 60;
  const ok = new URLSearchParams(a.signer.query("p/x", exp));
  assert.equal(a.signer.check("p/x", ok), "ok");
  assert.equal(a.signer.check("p/y", ok), "bad");
  assert.equal(a.signer.check("p/x", new URLSearchParams()), "missing");
  assert.equal(a.signer.check("p/x", ok, (exp + 1) * 1000), "expired");
});
