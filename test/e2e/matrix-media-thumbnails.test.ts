/**
 * Thumbnails (spec "Thumbnails"): real resized images, decoded by ffprobe, at the server's sizes (Synapse's five:
 * the closest at least as large as asked), crop vs scale, JPEG stays JPEG and PNG/GIF become PNG, GIF first frame
 * vs animated WebP, the cache on disk, the deprecated route for media from before the freeze, and the refusals:
 * non-images, garbage bytes labelled image/png, and decompression bombs (413, no decode, no crash).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { MEDIA_FREEZE_TS } from "../../src/matrix/client/media.ts";
import { mediaHold } from "../../src/matrix/service/media.ts";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { BACKENDS } from "./helpers/homeserver.ts";
import { type Kit, startKit } from "./matrix-accounts-kit.ts";

const THUMB = "/media/thumbnail/{serverName}/{mediaId}";
const MAX_PIXELS = 4_000_000;

/** Width, height and codec of an image as ffprobe (Debian's ffmpeg) decodes it. */
function ffprobe(bytes: Buffer): { width: number; height: number; codec: string } {
  const dir = mkdtempSync(join(tmpdir(), "thumb-"));
  try {
    const file = join(dir, "img");
    writeFileSync(file, bytes);
    const out = execFileSync("ffprobe", [
      "-v",
      "error",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=width,height,codec_name",
      "-of",
      "json",
      file,
    ]).toString();
    const s = JSON.parse(out).streams[0];
    return { width: s.width, height: s.height, codec: s.codec_name };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A 640x480 picture: red, green and blue vertical thirds (so crops and scales differ visibly). */
const picture = (w = 640, h = 480) =>
  sharp({ create: { width: w, height: h, channels: 3, background: "#ff0000" } }).composite([
    {
      input: { create: { width: Math.round(w / 3), height: h, channels: 3, background: "#00ff00" } },
      left: Math.round(w / 3),
      top: 0,
    },
    {
      input: { create: { width: w - 2 * Math.round(w / 3), height: h, channels: 3, background: "#0000ff" } },
      left: 2 * Math.round(w / 3),
      top: 0,
    },
  ]);

/** A PNG whose header claims `w`x`h` pixels over a few bytes of data (a decompression bomb's shape). */
function lyingPng(w: number, h: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit greyscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.alloc(1024))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

for (const backend of BACKENDS) {
  describe(`thumbnails on ${backend}`, () => {
    let k: Kit;
    let token: string;
    let png: Buffer;
    let pngId: string;
    before(async () => {
      k = await startKit(backend, { media: { maxUploadBytes: 8 * 1024 * 1024, maxImagePixels: MAX_PIXELS } });
      token = (await k.register("thumbs")).token;
      png = await picture().png().toBuffer();
      pngId = await upload(png, "image/png");
    });
    after(async () => {
      await k.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    async function upload(body: Buffer, type: string): Promise<string> {
      const r = await k.call("POST", "/_matrix/media/v3/upload", body, token, { "Content-Type": type });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.content_uri.split("/").pop();
    }
    const thumb = (id: string, q: string, t: string | undefined = token) =>
      k.call("GET", `/_matrix/client/v1/media/thumbnail/localhost/${id}?${q}`, undefined, t);

    test("a 640x480 PNG: each asked size gets the closest server size at least as large, decoded by ffprobe", async () => {
      const cases: [string, number, number][] = [
        ["width=320&height=240&method=scale", 320, 240],
        ["width=100&height=100&method=scale", 320, 240],
        ["width=400&height=300", 640, 480], // method defaults to scale
        ["width=1000&height=1000&method=scale", 640, 480], // never beyond the original
        ["width=32&height=32&method=crop", 32, 32],
        ["width=50&height=50&method=crop", 96, 96],
        ["width=96&height=96&method=crop", 96, 96],
      ];
      for (const [q, w, h] of cases) {
        const r = await thumb(pngId, q);
        assert.equal(r.status, 200, `${q}: ${r.status}`);
        assert.equal(r.headers.get("content-type"), "image/png", q);
        assert.equal(r.headers.get("content-disposition"), 'inline; filename="thumbnail.png"', q);
        assert.deepEqual(ffprobe(r.body), { width: w, height: h, codec: "png" }, q);
      }
    });

    test("crop cuts the sides to fill the box; scale keeps the whole picture", async () => {
      const crop = await sharp((await thumb(pngId, "width=96&height=96&method=crop")).body)
        .raw()
        .toBuffer({ resolveWithObject: true });
      // A 640x480 picture cropped square keeps its middle 480 px: the centre is green.
      const px = (x: number, y: number) => [...crop.data.subarray((y * 96 + x) * crop.info.channels).subarray(0, 3)];
      assert.deepEqual(px(48, 48), [0, 255, 0]);
      const scale = await sharp((await thumb(pngId, "width=320&height=240&method=scale")).body)
        .raw()
        .toBuffer({ resolveWithObject: true });
      const spx = (x: number) => [...scale.data.subarray((120 * 320 + x) * scale.info.channels).subarray(0, 3)];
      assert.deepEqual(
        [spx(2), spx(160), spx(317)],
        [
          [255, 0, 0],
          [0, 255, 0],
          [0, 0, 255],
        ],
      );
    });

    test("a JPEG thumbnails to JPEG; the thumbnail is cached on disk and served again identically", async () => {
      const jpeg = await picture(1200, 900).jpeg().toBuffer();
      const id = await upload(jpeg, "image/jpeg");
      const a = await thumb(id, "width=640&height=480&method=scale");
      assert.equal(a.status, 200);
      assert.equal(a.headers.get("content-type"), "image/jpeg");
      assert.deepEqual(ffprobe(a.body), { width: 640, height: 480, codec: "mjpeg" });
      const sha = createHash("sha256").update(jpeg).digest("hex");
      const dir = join(k.dataDir, "thumbnails", sha.slice(0, 2), sha);
      assert.deepEqual(readdirSync(dir).sort(), ["640x480-scale.jpeg", "meta.json"]);
      const b = await thumb(id, "width=600&height=450&method=scale");
      assert.ok(Buffer.from(b.body).equals(Buffer.from(a.body)), "the same cached thumbnail");
    });

    test("a GIF: its first frame as PNG; animated=true gives an animated WebP", async () => {
      const frame = (bg: string) => sharp({ create: { width: 200, height: 100, channels: 3, background: bg } });
      const frames = await Promise.all(["#ff0000", "#0000ff"].map((c) => frame(c).raw().toBuffer()));
      const anim = await sharp(Buffer.concat(frames), {
        raw: { width: 200, height: 200, channels: 3, pageHeight: 100 },
      })
        .gif({ loop: 0, delay: [100, 100] })
        .toBuffer();
      assert.equal((await sharp(anim).metadata()).pages, 2, "the test GIF has two frames");
      const id = await upload(anim, "image/gif");
      const still = await thumb(id, "width=32&height=32&method=crop");
      assert.equal(still.status, 200, JSON.stringify(still.body));
      assert.equal(still.headers.get("content-type"), "image/png");
      assert.deepEqual(ffprobe(still.body), { width: 32, height: 32, codec: "png" });
      const first = await sharp(still.body).raw().toBuffer();
      assert.deepEqual([...first.subarray(0, 3)], [255, 0, 0], "the first (red) frame");
      const moving = await thumb(id, "width=32&height=32&method=crop&animated=true");
      assert.equal(moving.headers.get("content-type"), "image/webp");
      const m = await sharp(moving.body, { animated: true }).metadata();
      assert.deepEqual([m.format, m.pages, m.width, m.pageHeight], ["webp", 2, 32, 32]);
      // A still image asked animated is a still thumbnail.
      const pngStill = await thumb(pngId, "width=32&height=32&method=crop&animated=true");
      assert.equal(pngStill.headers.get("content-type"), "image/png");
    });

    test("refusals: non-images and garbage are 400 M_UNKNOWN, bombs 413 M_TOO_LARGE, bad parameters 400", async () => {
      const text = await upload(Buffer.from("hello"), "text/plain");
      const garbage = await upload(Buffer.from("this is not a png at all, just text"), "image/png");
      const truncated = await upload(png.subarray(0, 200), "image/png");
      for (const id of [text, garbage, garbage, truncated]) {
        const r = await thumb(id, "width=32&height=32");
        assert.deepEqual([r.status, r.body.errcode], [400, "M_UNKNOWN"], JSON.stringify(r.body));
        assertSpec("authed-content-repo.yaml", THUMB, "GET", 400, r.body);
      }
      // A header that claims 60000x60000 pixels: refused from the header, nothing decoded.
      const liar = await upload(lyingPng(60_000, 60_000), "image/png");
      // A real one: 2500x2500 of one colour is a few kB of PNG and 6.25 Mpx (over the test's 4 Mpx).
      const real = await upload(
        await sharp({ create: { width: 2500, height: 2500, channels: 3, background: "#000" } })
          .png({ compressionLevel: 9 })
          .toBuffer(),
        "image/png",
      );
      for (const id of [liar, real, liar]) {
        const r = await thumb(id, "width=96&height=96&method=crop");
        assert.deepEqual([r.status, r.body.errcode], [413, "M_TOO_LARGE"], JSON.stringify(r.body));
        assertSpec("authed-content-repo.yaml", THUMB, "GET", 413, r.body);
      }
      for (const q of [
        "width=0&height=10",
        "width=-1&height=10",
        "width=1.5&height=2",
        "width=10&height=10&method=zoom",
      ]) {
        const r = await thumb(pngId, q);
        assert.deepEqual([r.status, r.body.errcode], [400, "M_INVALID_PARAM"], q);
      }
      const r = await thumb(pngId, "width=10&height=10&animated=yes");
      assert.equal(r.status, 400);
      // The server is still well.
      assert.equal((await thumb(pngId, "width=32&height=32&method=crop")).status, 200);
    });

    test("the deprecated /_matrix/media/v3/thumbnail route serves media from before the freeze, unauthenticated", async () => {
      const put = await k.hs.cas.put(png, { hold: mediaHold("oldthumb1") });
      await k.hs.store.media.putMedia({
        mediaId: "oldthumb1",
        uploader: "@thumbs:localhost",
        contentType: "image/png",
        filename: "old.png",
        size: put.size,
        sha256: put.sha256,
        createdTs: MEDIA_FREEZE_TS - 1,
      });
      const r = await k.call(
        "GET",
        "/_matrix/media/v3/thumbnail/localhost/oldthumb1?width=320&height=240&method=scale",
      );
      assert.equal(r.status, 200);
      assert.deepEqual(ffprobe(r.body), { width: 320, height: 240, codec: "png" });
      // New media is not on the deprecated route (media freeze).
      const fresh = await k.call("GET", `/_matrix/media/v3/thumbnail/localhost/${pngId}?width=32&height=32`);
      assert.equal(fresh.status, 404);
      assert.ok(existsSync(join(k.dataDir, "thumbnails")));
    });
  });
}
