/**
 * URL previews (spec "URL previews", GET /media/preview_url): fetch a page through `safeFetch` (no private networks,
 * size and time limits), read its OpenGraph data (`html-meta.ts`), and fetch its `og:image` into the media store so
 * the client gets an `mxc://` URI (with og:image:width/height/type and matrix:image:size) and never contacts the
 * page's server itself. A link straight to an image is previewed as that image.
 *
 * Cache: a successful answer is kept in the store for an hour (url_previews, as Synapse's
 * local_media_repository_url_cache), read before any fetch, so every worker of a scaled-out homeserver, and the
 * process after a restart, answers from it instead of fetching the page again; a failure is not kept. In one process,
 * concurrent requests for one URL share one store read and one fetch (the in-flight map holds nothing once settled).
 * Two workers asked for the same uncached URL at the same moment may both fetch it (the later write wins).
 */
import { AmiError } from "../../core/errors.ts";
import type { MatrixConfig } from "../config.ts";
import type { MediaStore } from "../store/types.ts";
import { metaCharset, pageMeta } from "./html-meta.ts";
import { AddressPolicy, checkUrl, safeFetch } from "./safe-fetch.ts";
import { probeImage } from "./thumbnailer.ts";

/** Stores an image's bytes as media and answers its mxc:// URI. */
export type StoreImage = (bytes: Buffer, contentType: string) => Promise<string>;

export type Preview = Record<string, string | number>;

/** The store's shared preview cache (store/types.ts MediaStore). */
export type UrlPreviewCache = Pick<MediaStore, "getUrlPreview" | "putUrlPreview">;

/** How long an answer is kept (Synapse: an hour). */
export const CACHE_MS = 60 * 60 * 1000;

export class UrlPreviewer {
  readonly #cfg: MatrixConfig["media"]["urlPreview"];
  readonly #policy: AddressPolicy;
  readonly #cache: UrlPreviewCache;
  /** The previews being made in this process, by URL, until they settle. */
  readonly #inFlight = new Map<string, Promise<Preview>>();

  constructor(cfg: MatrixConfig["media"]["urlPreview"], cache: UrlPreviewCache) {
    this.#cfg = cfg;
    this.#cache = cache;
    this.#policy = new AddressPolicy(cfg.ipRangeAllowlist, cfg.ipRangeBlacklist);
  }

  get enabled(): boolean {
    return this.#cfg.enabled;
  }

  /** The preview of `raw` (cached in the store for an hour; a failure is not cached). */
  preview(raw: string, storeImage: StoreImage): Promise<Preview> {
    const url = checkUrl(raw);
    url.hash = "";
    const key = url.href;
    let job = this.#inFlight.get(key);
    if (!job) {
      job = this.#cachedOrFetch(url, storeImage).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, job);
    }
    return job;
  }

  async #cachedOrFetch(url: URL, storeImage: StoreImage): Promise<Preview> {
    const hit = await this.#cache.getUrlPreview(url.href, Date.now());
    if (hit) return JSON.parse(hit.og) as Preview;
    let mediaId: string | null = null;
    const og = await this.#fetch(url, async (bytes, contentType) => {
      const mxc = await storeImage(bytes, contentType);
      mediaId = mxc.slice(mxc.lastIndexOf("/") + 1);
      return mxc;
    });
    const now = Date.now();
    const row = { url: url.href, og: JSON.stringify(og), mediaId, downloadTs: now, expiresTs: now + CACHE_MS };
    // The asker has the answer either way: a store that cannot keep it only costs a fetch next time.
    await this.#cache.putUrlPreview(row, now).catch(() => {});
    return og;
  }

  async #fetch(url: URL, storeImage: StoreImage): Promise<Preview> {
    const signal = AbortSignal.timeout(this.#cfg.timeoutMs);
    const opts = { policy: this.#policy, maxBytes: this.#cfg.maxBytes, signal };
    const page = await safeFetch(url, opts);
    if (page.status < 200 || page.status >= 300)
      throw new AmiError("M_UNKNOWN", `The URL answered HTTP ${page.status}`, {}, 502);
    const type = page.contentType.split(";")[0].trim().toLowerCase();
    if (type.startsWith("image/")) return page.truncated ? {} : await this.#image(page.body, storeImage);
    if (type !== "text/html" && type !== "application/xhtml+xml") return {};
    const og: Preview = pageMeta(decodeHtml(page.body, page.contentType));
    const imageUrl = typeof og["og:image"] === "string" ? og["og:image"] : null;
    delete og["og:image"];
    for (const k of ["og:image:width", "og:image:height", "og:image:type", "og:image:secure_url", "og:image:url"])
      delete og[k];
    if (imageUrl) {
      const image = await this.#remoteImage(imageUrl, page.url, signal, storeImage).catch(() => null);
      if (image) Object.assign(og, image);
    }
    return og;
  }

  async #remoteImage(raw: string, base: URL, signal: AbortSignal, storeImage: StoreImage): Promise<Preview | null> {
    const url = checkUrl(new URL(raw, base).href);
    const res = await safeFetch(url, {
      policy: this.#policy,
      maxBytes: this.#cfg.maxBytes,
      signal,
      accept: "image/*",
    });
    if (res.status < 200 || res.status >= 300 || res.truncated) return null;
    return this.#image(res.body, storeImage);
  }

  /** An image into the media store, described as og:image fields; not a readable JPEG/PNG/GIF/WebP: nothing. */
  async #image(bytes: Buffer, storeImage: StoreImage): Promise<Preview> {
    const probed = await probeImage(bytes);
    if (!probed) return {};
    const type = `image/${probed.format}`;
    return {
      "og:image": await storeImage(bytes, type),
      "og:image:type": type,
      "og:image:width": probed.width,
      "og:image:height": probed.height,
      "matrix:image:size": bytes.length,
    };
  }
}

/** The page's text in its declared charset (header, else meta tag), UTF-8 when unknown or unsupported. */
function decodeHtml(body: Buffer, contentType: string): string {
  const fromHeader = /charset\s*=\s*["']?([A-Za-z0-9_-]+)/i.exec(contentType)?.[1];
  const charset = fromHeader ?? metaCharset(body.subarray(0, 2048).toString("latin1")) ?? "utf-8";
  try {
    return new TextDecoder(charset).decode(body);
  } catch {
    return new TextDecoder("utf-8").decode(body);
  }
}
