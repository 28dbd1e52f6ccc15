/**
 * Thumbnails of uploaded images (spec "Thumbnails"), made with sharp (libvips) on first request and cached on disk.
 *
 * Only JPEG, PNG (APNG: its first frame), GIF and WebP are decoded (Synapse's set), recognised by their magic bytes,
 * not by the uploader's Content-Type, so no other libvips loader (SVG, TIFF, PDF, ...) ever sees uploaded bytes.
 * The pixel count is read from the header first: past `maxPixels` the answer is 413 M_TOO_LARGE before any pixel is
 * decoded, and sharp's own `limitInputPixels` stays as a second fence (a decompression bomb is a clear error, never
 * an out-of-memory). Output is JPEG for JPEG and WebP sources and PNG for PNG and GIF (as Synapse), the first frame
 * only, unless `animated` is asked of an animated GIF/WebP: then an animated WebP (the type the spec prefers).
 *
 * Cache: `<dir>/<sha256[0..2]>/<sha256>/` per original (its content address, so identical uploads share thumbnails):
 * `meta.json` (dimensions and format, or why it cannot be thumbnailed) so a cached thumbnail is served without
 * decoding the original, and one file per generated size (`<w>x<h>-<method>[-animated].<ext>`), each written to a
 * temp file and renamed. Concurrent requests for the same missing thumbnail share one generation: in one process by
 * an in-flight map; across the workers of a scaled-out homeserver (which share this directory) by a lock file,
 * `.<name>.lock`, created with O_EXCL: its creator renders, the others poll for the renamed file (or take the lock
 * themselves once it is gone without one: the render failed). A lock older than LOCK_STALE_MS is taken for its dead
 * creator's (a worker killed mid-render) and removed. The lock only saves work, correctness never rests on it (the
 * temp file and rename do that): a takeover of a slow creator's lock, or two workers removing one stale lock, can only
 * make a thumbnail twice, as without the lock. meta.json (a header read) is not locked: it is cheap to do twice.
 */
import { mkdir, open, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Sharp, SharpOptions } from "sharp";
import { AmiError } from "../../core/errors.ts";
import { randomString } from "../events/ids.ts";
import { selectThumbnail, type ThumbnailMethod } from "./thumbnail-sizes.ts";

export interface ThumbnailAsk {
  width: number;
  height: number;
  method: ThumbnailMethod;
  animated: boolean;
}

export interface Thumbnail {
  bytes: Buffer;
  contentType: string;
  width: number;
  height: number;
}

type Format = "jpeg" | "png" | "gif" | "webp";

/** What the cache remembers of an original: what a thumbnail needs, or why there is none. */
type Meta = { width: number; height: number; format: Format; pages: number } | { refused: string; tooLarge?: boolean };

/** The format of a buffer from its first bytes, or null for anything this server will not decode. */
export function sniffImage(b: Buffer): Format | null {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    return "png";
  if (b.length >= 6 && /^GIF8[79]a$/.test(b.subarray(0, 6).toString("latin1"))) return "gif";
  if (b.length >= 12 && b.toString("latin1", 0, 4) === "RIFF" && b.toString("latin1", 8, 12) === "WEBP") return "webp";
  return null;
}

/** The content types the server thumbnails (Synapse's THUMBNAIL_SUPPORTED_MEDIA_FORMAT_MAP, and APNG). */
export const THUMBNAIL_TYPES = new Set([
  "image/jpeg",
  "image/jpg",
  "image/png",
  "image/apng",
  "image/gif",
  "image/webp",
]);

type SharpFactory = (input: Buffer, options?: SharpOptions) => Sharp;
let sharpLoad: Promise<SharpFactory> | null = null;
/**
 * sharp (and libvips, ~30 MB) is loaded on the first thumbnail, not when the homeserver starts. libvips' operation
 * cache is off: every original is decoded once per thumbnail and kept nowhere, so it would only hold memory.
 */
const loadSharp = (): Promise<SharpFactory> => {
  sharpLoad ??= import("sharp").then((m) => {
    m.default.cache(false);
    return m.default as unknown as SharpFactory;
  });
  return sharpLoad;
};

/** Width, height (EXIF-oriented), format and frame count of a JPEG/PNG/GIF/WebP from its header, or null. */
export async function probeImage(
  b: Buffer,
): Promise<{ width: number; height: number; format: Format; pages: number } | null> {
  const format = sniffImage(b);
  if (!format) return null;
  const sharp = await loadSharp();
  const m = await sharp(b, { limitInputPixels: false })
    .metadata()
    .catch(() => null);
  const width = m?.autoOrient?.width ?? m?.width;
  const height = m?.autoOrient?.height ?? m?.height;
  return width && height ? { width, height, format, pages: m?.pages ?? 1 } : null;
}

/** A render lock older than this is a dead worker's (a render of maxImagePixels takes a few seconds at most). */
export const LOCK_STALE_MS = 30_000;
/** How often a worker waiting for another's render looks for its file. */
const LOCK_POLL_MS = 50;

const cannot = (why: string) =>
  new AmiError("M_UNKNOWN", `Cannot generate thumbnails for the requested content: ${why}`, {}, 400);
const tooLarge = (why: string) => new AmiError("M_TOO_LARGE", `Content is too large to thumbnail: ${why}`);

export class Thumbnailer {
  readonly #dir: string;
  readonly #maxPixels: number;
  readonly #inFlight = new Map<string, Promise<Thumbnail>>();

  constructor(dir: string, maxPixels: number) {
    this.#dir = dir;
    this.#maxPixels = maxPixels;
  }

  /**
   * The thumbnail of the original whose content address is `sha256` (bytes from `load`, read only on a cache miss)
   * for the asked size: the closest of the server's sizes (thumbnail-sizes.ts).
   */
  async thumbnail(sha256: string, load: () => Promise<Buffer>, ask: ThumbnailAsk): Promise<Thumbnail> {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw cannot("unknown content address");
    const dir = join(this.#dir, sha256.slice(0, 2), sha256);
    let meta = await readJson(join(dir, "meta.json"));
    let original: Buffer | null = null;
    if (!meta) {
      original = await load();
      meta = await this.#inspect(original);
      await writeAtomic(dir, "meta.json", Buffer.from(JSON.stringify(meta)));
    }
    if ("refused" in meta) throw meta.tooLarge ? tooLarge(meta.refused) : cannot(meta.refused);
    const size = selectThumbnail(meta.width, meta.height, ask.width, ask.height, ask.method);
    if (!size) throw cannot("no thumbnail size for this method");
    const animated = ask.animated && meta.pages > 1 && (meta.format === "gif" || meta.format === "webp");
    const type = animated ? "webp" : meta.format === "jpeg" || meta.format === "webp" ? "jpeg" : "png";
    const name = `${size.width}x${size.height}-${size.method}${animated ? "-animated" : ""}.${type}`;
    const out = { contentType: `image/${type}`, width: size.width, height: size.height };
    const cached = await readFile(join(dir, name)).catch(() => null);
    if (cached) return { ...out, bytes: cached };
    const key = join(dir, name);
    let job = this.#inFlight.get(key);
    if (!job) {
      const src = original;
      job = (async () => {
        const bytes = await renderOnce(dir, name, async () => {
          const made = await this.#render(src ?? (await load()), size.width, size.height, size.method, animated, type);
          await writeAtomic(dir, name, made);
          return made;
        });
        return { ...out, bytes };
      })().finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, job);
    }
    return job;
  }

  /** Dimensions from the header only; anything unreadable or too large is remembered as refused. */
  async #inspect(b: Buffer): Promise<Meta> {
    if (!sniffImage(b)) return { refused: "not a JPEG, PNG, GIF or WebP image" };
    const probed = await probeImage(b);
    if (!probed) return { refused: "the image cannot be read" };
    const { width, height, format, pages } = probed;
    if (width * height > this.#maxPixels)
      return { refused: `${width}x${height} is over ${this.#maxPixels} pixels`, tooLarge: true };
    if (width * height * pages > this.#maxPixels * 4)
      return { refused: `${pages} frames of ${width}x${height}`, tooLarge: true };
    return { width, height, format, pages };
  }

  async #render(
    src: Buffer,
    width: number,
    height: number,
    method: ThumbnailMethod,
    animated: boolean,
    type: "jpeg" | "png" | "webp",
  ): Promise<Buffer> {
    const sharp = await loadSharp();
    try {
      // Animated frames count together against the limit (#inspect refused more than 4x maxPixels in all).
      const limitInputPixels = animated ? this.#maxPixels * 4 : this.#maxPixels;
      let img = sharp(src, { limitInputPixels, animated, failOn: "error" })
        .rotate() // EXIF orientation, as Synapse transposes
        .resize(width, height, { fit: method === "crop" ? "cover" : "fill", position: "centre" });
      if (type === "jpeg") img = img.flatten({ background: "#ffffff" }).jpeg({ quality: 80, mozjpeg: false });
      else if (type === "png") img = img.png();
      else img = img.webp({ quality: 80 });
      return await img.toBuffer();
    } catch (e) {
      throw cannot(`the image cannot be decoded (${(e as Error).message.slice(0, 120)})`);
    }
  }
}

/**
 * `<dir>/<name>` made by `make` here, or by another worker holding its lock (then read once renamed into place).
 */
async function renderOnce(dir: string, name: string, make: () => Promise<Buffer>): Promise<Buffer> {
  const file = join(dir, name);
  const lock = join(dir, `.${name}.lock`);
  await mkdir(dir, { recursive: true });
  for (;;) {
    const held = await open(lock, "wx").then(
      (fh) => fh.close().then(() => true),
      (e: NodeJS.ErrnoException) => {
        if (e.code === "EEXIST") return false;
        throw e;
      },
    );
    if (held) {
      try {
        // A worker that held the lock until just now may have made it.
        return (await readFile(file).catch(() => null)) ?? (await make());
      } finally {
        await unlink(lock).catch(() => {});
      }
    }
    await sleep(LOCK_POLL_MS);
    const made = await readFile(file).catch(() => null);
    if (made) return made;
    const st = await stat(lock).catch(() => null);
    if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) await unlink(lock).catch(() => {});
  }
}

async function readJson(path: string): Promise<Meta | null> {
  const raw = await readFile(path, "utf8").catch(() => null);
  if (raw === null) return null;
  try {
    return JSON.parse(raw) as Meta;
  } catch {
    return null;
  }
}

/** Temp file and rename: a reader sees the whole file or none (the cache is rebuilt from originals if lost). */
async function writeAtomic(dir: string, name: string, bytes: Buffer): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${name}.${randomString(8)}.tmp`);
  await writeFile(tmp, bytes);
  await rename(tmp, join(dir, name));
}
