/**
 * The content repository's in-process parts (spec "Content repository"): the thumbnailer, the URL previewer, and
 * the wake-ups of downloads waiting for an asynchronous upload (POST /media/v1/create, then PUT the bytes): a
 * download of a created but not yet uploaded ID waits until the upload lands or its `timeout_ms` passes, woken by
 * the upload itself rather than by polling the store.
 */
import { join } from "node:path";
import type { MatrixConfig } from "../config.ts";
import { Thumbnailer } from "./thumbnailer.ts";
import { UrlPreviewer } from "./url-preview.ts";

/** The file of an upload from before the content-addressed store: <mediaDir>/<2 chars>/<mediaId>. */
export const mediaPath = (dir: string, mediaId: string) => join(dir, mediaId.slice(0, 2), mediaId);

/** The hold that keeps an upload's bytes in the content-addressed store while its media row exists. */
export const mediaHold = (mediaId: string) => `matrix.media:${mediaId}`;

export class MediaService {
  readonly thumbnails: Thumbnailer;
  readonly previews: UrlPreviewer;
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #uploading = new Set<string>();

  constructor(config: MatrixConfig["media"], dataDir: string) {
    this.thumbnails = new Thumbnailer(join(dataDir, "thumbnails"), config.maxImagePixels);
    this.previews = new UrlPreviewer(config.urlPreview);
  }

  /** Resolves when `mediaId` is uploaded (`uploaded` called), after `ms`, or when `signal` aborts. */
  waitForUpload(mediaId: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(mediaId) ?? new Set<() => void>();
      this.#waiters.set(mediaId, waiters);
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        waiters.delete(done);
        if (waiters.size === 0 && this.#waiters.get(mediaId) === waiters) this.#waiters.delete(mediaId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      waiters.add(done);
    });
  }

  /** Take the right to upload to a created media ID (false: an upload to it is under way). */
  claimUpload(mediaId: string): boolean {
    if (this.#uploading.has(mediaId)) return false;
    this.#uploading.add(mediaId);
    return true;
  }

  releaseUpload(mediaId: string): void {
    this.#uploading.delete(mediaId);
  }

  /** An upload to `mediaId` committed: wake its waiting downloads. */
  uploaded(mediaId: string): void {
    for (const wake of [...(this.#waiters.get(mediaId) ?? [])]) wake();
  }
}
