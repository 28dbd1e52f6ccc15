/**
 * Hub -> CMAF: a reader's frames go through the in-process CMAF muxer (fmp4/muxer.ts: remux only, no
 * transcoding), whose init segment and fragments (one per LL-HLS part) CmafTimeline cuts into segments for HLS,
 * LL-HLS and DASH. Muxing in TypeScript (ffmpeg 5.1's hls muxer cannot write LL-HLS parts, and an ffmpeg child
 * per stream cost ~6× ffmpeg alone in CPU, most of it piping FLV to it) keeps a stream's packaging in one process.
 */
import type { Logger } from "../../../core/logger.ts";
import type { Frame } from "../../frame.ts";
import type { MediaStream, Reader } from "../../hub.ts";
import { CmafMuxer } from "../fmp4/muxer.ts";
import type { TrackCodec } from "../fmp4/sample-entries.ts";
import { CmafTimeline, type TimelineOptions } from "../fmp4/timeline.ts";
import { release } from "../slab.ts";

export interface PackagerOptions extends TimelineOptions {
  partSeconds: number;
  log: Logger;
}

export class Packager {
  readonly timeline: CmafTimeline;
  readonly path: string;
  readonly #reader: Reader;
  readonly #o: PackagerOptions;
  readonly #log: Logger;
  bytesOut = 0;
  /** The tracks of the current init segment (codec strings for playlists). */
  tracks: TrackCodec[] = [];

  /** Replaced by the next publisher's packager: stop touching the shared timeline. */
  #detached = false;

  /** `timeline`: the path's previous timeline when a publisher reconnects (it continues with a discontinuity). */
  constructor(stream: MediaStream, o: PackagerOptions, timeline?: CmafTimeline) {
    this.path = stream.path;
    this.#o = o;
    this.#log = o.log.child({ path: stream.path, output: "cmaf" });
    this.timeline = timeline ?? new CmafTimeline(o);
    if (timeline) timeline.restart();
    // Every frame taken is given back once muxed (the muxer retains what it keeps): see slab.ts.
    this.#reader = stream.addReader("hls", "packager", { releases: true });
    this.#run(stream).catch((e) => {
      this.#log.error("packager failed", { error: (e as Error).message });
      this.#end();
    });
  }

  #end(): void {
    if (!this.#detached) this.timeline.end();
  }

  get framesDiscarded(): number {
    return this.#reader.framesDiscarded;
  }

  async #run(stream: MediaStream): Promise<void> {
    // Wait for the first decodable media frame: by then the sequence headers tell which tracks exist.
    const held: Frame[] = [];
    for (;;) {
      const f = await this.#reader.next();
      if (!f) return this.#end();
      held.push(f);
      if (f.config || f.kind === "data") continue;
      if ((f.kind === "video" && f.keyframe) || (f.kind === "audio" && !stream.videoConfig)) break;
    }
    const live = () => !this.#detached;
    const muxer = new CmafMuxer(
      this.#o.partSeconds,
      {
        init: (ftyp, moov, tracks) => {
          this.tracks = tracks;
          if (live()) this.timeline.setInit(ftyp, moov);
        },
        fragment: (moof, mdat) => {
          this.bytesOut += moof.length + mdat.length;
          if (live()) this.timeline.addFragment(moof, mdat);
        },
        restart: () => {
          this.#log.info("codec configuration changed: new init segment");
          if (live()) this.timeline.restart();
        },
        skipped: (kind, reason) => this.#log.warn(`${kind} track not packaged`, { reason }),
      },
      { recycle: true },
    );
    const push = (f: Frame): boolean => {
      try {
        muxer.push(f);
        return true;
      } catch (e) {
        // A frame the muxer cannot read (or anything after it throwing) ends packaging of this publish, not the
        // process nor the publisher's connection.
        this.#log.error("cannot package stream", { error: (e as Error).message });
        return false;
      } finally {
        release(f.data);
      }
    };
    let ok = true;
    for (const f of held) ok &&= push(f);
    // From here frames are muxed as the publisher writes them (Reader.listen), not one awaited `next()` each.
    await new Promise<void>((done) => {
      const drain = () => {
        while (ok && !this.#detached) {
          const f = this.#reader.poll();
          if (!f) break;
          ok = push(f);
        }
        if (!ok || this.#detached || (this.#reader.closed && this.#reader.queued === 0)) {
          this.#reader.listen(() => {});
          done();
        }
      };
      this.#reader.listen(drain);
      drain();
    });
    if (ok) muxer.end();
    if (muxer.tracks.length === 0) this.#log.warn("no track could be packaged: no HLS/DASH for this publish");
    this.#end();
  }

  /** Stop; with `detach`, leave the timeline to the next publisher's packager. */
  close(detach = false): void {
    this.#detached ||= detach;
    this.#reader.close();
  }
}
