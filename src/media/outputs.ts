/**
 * Per-path outputs: when a path is published, a Packager starts feeding its CMAF timeline (HLS, LL-HLS and DASH
 * are rendered from it). After the publisher leaves, the finished timeline stays readable (ENDLIST, static MPD)
 * for a while so players can reach the end, unless a new publisher replaces it.
 */
import type { Logger } from "../core/logger.ts";
import type { Hub, MediaStream } from "./hub.ts";
import { Packager } from "./protocols/hls/from-stream.ts";

export interface OutputOptions {
  segmentSeconds: number;
  partSeconds: number;
  segmentCount: number;
  ffmpegPath: string;
  lingerMs: number;
  /** A publisher back within this time continues the timeline seamlessly (no ENDLIST in between). */
  endGraceMs: number;
}

export interface PathOutput {
  path: string;
  stream: MediaStream;
  packager: Packager;
  /** HLS/DASH viewers as sessions: client key -> last request time. */
  sessions: Map<string, number>;
  httpBytesOut: number;
  endedAt?: number;
}

const SESSION_IDLE_MS = 15_000;

export class Outputs {
  readonly #byPath = new Map<string, PathOutput>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** When each path's idle sessions were last dropped. */
  readonly #pruned = new WeakMap<PathOutput, number>();

  constructor(hub: Hub, o: OutputOptions, log: Logger) {
    hub.on("publish", (stream) => {
      // A publisher coming back while the old outputs linger continues the same timeline (numbering goes on,
      // EXT-X-DISCONTINUITY marks the change), so players keep playing instead of seeing the playlist restart.
      const prev = this.#byPath.get(stream.path);
      prev?.packager.close(true);
      const out: PathOutput = {
        path: stream.path,
        stream,
        packager: new Packager(stream, { ...o, log }, prev?.packager.timeline),
        sessions: prev?.sessions ?? new Map(),
        httpBytesOut: prev?.httpBytesOut ?? 0,
      };
      this.#byPath.set(stream.path, out);
      stream.once("end", () => {
        out.endedAt = Date.now();
        const t = setTimeout(() => {
          this.#timers.delete(t);
          if (this.#byPath.get(stream.path) === out) this.#byPath.delete(stream.path);
        }, o.endGraceMs + o.lingerMs);
        t.unref();
        this.#timers.add(t);
      });
    });
  }

  /** Streams whose publisher left but whose outputs are still served. */
  lingering(): MediaStream[] {
    return [...this.#byPath.values()].filter((o) => o.stream.ended).map((o) => o.stream);
  }

  get(path: string): PathOutput | undefined {
    return this.#byPath.get(path);
  }

  /** Count a viewer request; returns the number of live sessions on the path. */
  touch(out: PathOutput, client: string): void {
    const now = Date.now();
    out.sessions.set(client, now);
    // Idle sessions are dropped at most once a second, not on every request (500 viewers polling would walk
    // all 500 on each of their requests); `sessions()` counts only live ones meanwhile.
    if (now - (this.#pruned.get(out) ?? 0) < 1000) return;
    this.#pruned.set(out, now);
    for (const [k, t] of out.sessions) if (t < now - SESSION_IDLE_MS) out.sessions.delete(k);
  }

  sessions(out: PathOutput): number {
    const now = Date.now();
    let n = 0;
    for (const t of out.sessions.values()) if (t >= now - SESSION_IDLE_MS) n++;
    return n;
  }

  close(): void {
    for (const t of this.#timers) clearTimeout(t);
    for (const o of this.#byPath.values()) o.packager.close();
    this.#byPath.clear();
  }
}
