/**
 * The content repository's in-process parts (spec "Content repository"): the thumbnailer, the URL previewer, and
 * the wake-ups of downloads waiting for an asynchronous upload (POST /media/v1/create, then PUT the bytes): a
 * download of a created but not yet uploaded ID waits until the upload lands or its `timeout_ms` passes, woken by
 * the upload itself rather than by polling the store. With several workers the upload may land on another one: it
 * publishes `{t: "media"}` on the cluster bus and the waiters everywhere read the store (shared) again; since the bus
 * is lossy, a waiter also re-reads the store every RECHECK_MS.
 */
import { join } from "node:path";
import type { ClusterBus } from "../cluster/bus.ts";
import type { Cluster } from "../cluster/index.ts";
import type { MatrixConfig } from "../config.ts";
import type { Homeserver } from "../hs.ts";
import type { MediaRow } from "../store/types.ts";
import { Thumbnailer } from "./thumbnailer.ts";
import { type UrlPreviewCache, UrlPreviewer } from "./url-preview.ts";

/** The file of an upload from before the content-addressed store: <mediaDir>/<2 chars>/<mediaId>. */
export const mediaPath = (dir: string, mediaId: string) => join(dir, mediaId.slice(0, 2), mediaId);

/** The hold that keeps an upload's bytes in the content-addressed store while its media row exists. */
export const mediaHold = (mediaId: string) => `matrix.media:${mediaId}`;

/**
 * After the write of `mediaId`'s row failed: let GC have the bytes `put` stored (held as mediaHold) — unless a row
 * for the same ID that won meanwhile (another request, maybe on another worker) names the same bytes: it relies on
 * that very hold. Returns that row, if any.
 */
export async function releaseLostPut(
  hs: Pick<Homeserver, "cas" | "store">,
  mediaId: string,
  put: { id: string; sha256: string },
): Promise<MediaRow | null> {
  const winner = await hs.store.media.getMedia(mediaId).catch(() => null);
  if (winner?.sha256 !== put.sha256) await hs.cas.release(put.id, mediaHold(mediaId)).catch(() => {});
  return winner;
}

/**
 * With several workers, how long a waiting download goes without reading the store again: only for a wake-up the
 * bus lost (a publish while the uploader's Redis connection was down; a subscriber's reconnection wakes them all).
 */
export const RECHECK_MS = 5000;

/** A download's interest in one media ID's upload (MediaService.watchUpload). */
export interface UploadWatch {
  /**
   * Resolves when the upload committed (here or on another worker) since the last wait, after `ms` (with several
   * workers: at most RECHECK_MS), or when `signal` aborts. The caller reads the store again either way.
   */
  wait(ms: number, signal: AbortSignal): Promise<void>;
  close(): void;
}

export class MediaService {
  readonly thumbnails: Thumbnailer;
  readonly previews: UrlPreviewer;
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #uploading = new Set<string>();
  readonly #bus: ClusterBus;
  readonly #clustered: boolean;

  constructor(
    config: MatrixConfig["media"],
    dataDir: string,
    cluster: Pick<Cluster, "bus" | "workers">,
    previewCache: UrlPreviewCache,
  ) {
    this.thumbnails = new Thumbnailer(join(dataDir, "thumbnails"), config.maxImagePixels);
    this.previews = new UrlPreviewer(config.urlPreview, previewCache);
    this.#bus = cluster.bus;
    this.#clustered = cluster.workers > 1;
    // An upload that committed on another worker wakes the downloads waiting here (its row is in the shared store).
    cluster.bus.subscribe((m) => {
      if (m.t === "media" && typeof m.mediaId === "string") this.#wake(m.mediaId);
    });
    // Messages may have been lost while Redis was away: every waiting download reads the store again.
    cluster.bus.onReconnect(() => {
      for (const id of [...this.#waiters.keys()]) this.#wake(id);
    });
  }

  /**
   * Start listening for `mediaId`'s upload. Taken before the store is read, so an upload committing between that
   * read and the wait still wakes it; close() when done.
   */
  watchUpload(mediaId: string): UploadWatch {
    let woken = false;
    let settle: (() => void) | null = null;
    const wake = () => {
      woken = true;
      settle?.();
    };
    const waiters = this.#waiters.get(mediaId) ?? new Set<() => void>();
    this.#waiters.set(mediaId, waiters);
    waiters.add(wake);
    const maxWait = this.#clustered ? RECHECK_MS : Number.POSITIVE_INFINITY;
    return {
      wait: (ms, signal) =>
        new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener("abort", done);
            settle = null;
            woken = false;
            resolve();
          };
          const timer = setTimeout(done, Math.min(ms, maxWait));
          settle = done;
          signal.addEventListener("abort", done, { once: true });
          if (woken || signal.aborted) done();
        }),
      close: () => {
        settle?.();
        waiters.delete(wake);
        if (waiters.size === 0 && this.#waiters.get(mediaId) === waiters) this.#waiters.delete(mediaId);
      },
    };
  }

  /**
   * Take the right to upload to a created media ID (false: an upload to it is under way in this process). Another
   * worker may take it too: the store's unique media ID settles that race (the later commit is refused).
   */
  claimUpload(mediaId: string): boolean {
    if (this.#uploading.has(mediaId)) return false;
    this.#uploading.add(mediaId);
    return true;
  }

  releaseUpload(mediaId: string): void {
    this.#uploading.delete(mediaId);
  }

  /** An upload to `mediaId` committed: wake its waiting downloads, here and on the other workers. */
  uploaded(mediaId: string): void {
    this.#wake(mediaId);
    if (this.#clustered) this.#bus.publish({ t: "media", mediaId });
  }

  #wake(mediaId: string): void {
    for (const wake of [...(this.#waiters.get(mediaId) ?? [])]) wake();
  }
}
