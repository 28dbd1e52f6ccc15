/**
 * The CMAF timeline of one stream path: an init segment, then fragments (each one LL-HLS part) grouped into
 * segments that start on a sync sample once the segment target duration is reached. HLS, LL-HLS and DASH are all
 * rendered from this one timeline, so they share segment files. Only a window of segments is kept in memory.
 */
import { handOut, join, release, retain } from "../slab.ts";
import { type FragmentTrack, parseInit, parseMoof, type TrackInfo } from "./boxes.ts";

export interface Part {
  /** Global part number (part URIs do not depend on which segment a part lands in, so hints never dangle). */
  n: number;
  data: Buffer;
  duration: number;
  independent: boolean;
}

export interface Segment {
  msn: number;
  parts: Part[];
  /** Seconds, in the main track's time. */
  start: number;
  duration: number;
  /** Media time of the start in the main track's timescale (DASH `t`). */
  t: number;
  /** Wall-clock time the first sample arrived (EXT-X-PROGRAM-DATE-TIME). */
  wallclock: number;
  complete: boolean;
  /** Discontinuity sequence (a new publisher on the path starts the next one); its init is `initUri(disc)`. */
  disc: number;
  /** First segment of a new publisher: EXT-X-DISCONTINUITY goes before it. */
  discontinuity: boolean;
  /** The fragment's own base media decode time (tfdt), without the offset `t` adds: DASH Periods list this. */
  tfdt: number;
  data?: Buffer;
}

export interface TimelineOptions {
  segmentSeconds: number;
  /** LL-HLS part duration: PART-TARGET (the muxer never makes a part longer, unless one sample is). */
  partSeconds: number;
  /** Complete segments listed in playlists; a few more are kept for players still fetching. */
  segmentCount: number;
  /**
   * After the publisher leaves, how long the timeline waits for it to come back before it ends (ENDLIST, static
   * MPD); a publisher back in time continues it with a discontinuity. 0 (default): end at once.
   */
  endGraceMs?: number;
}

/**
 * One DASH Period per discontinuity sequence (publisher): where it starts on the presentation timeline
 * (seconds since availabilityStart) and the tfdt that maps to that start, in its main track's timescale.
 */
export interface PeriodInfo {
  start: number;
  t0: number;
  timescale: number;
}

/** The init segment's name for a discontinuity sequence (the first keeps the plain name). */
export const initUri = (disc: number): string => (disc === 0 ? "init.mp4" : `init-${disc}.mp4`);

const EMPTY = Buffer.alloc(0);

/**
 * A part as the timeline keeps it: it retains its bytes in the muxer's recycling slab (slab.ts) until the
 * timeline drops them; reading `data` from outside hands them out for good (the slab is then never reused).
 * Inside the timeline and through `pin` the bytes are read without that.
 */
class HeldPart implements Part {
  readonly n: number;
  readonly duration: number;
  readonly independent: boolean;
  #data: Buffer;

  constructor(n: number, data: Buffer, duration: number, independent: boolean) {
    this.n = n;
    this.duration = duration;
    this.independent = independent;
    this.#data = data;
    retain(data);
  }

  get data(): Buffer {
    handOut(this.#data);
    return this.#data;
  }

  get held(): Buffer {
    return this.#data;
  }

  /** The timeline no longer keeps the bytes (idempotent). */
  drop(): void {
    const d = this.#data;
    if (d.length === 0) return;
    this.#data = EMPTY;
    release(d);
  }
}

/** A segment as the timeline keeps it: its joined bytes are held like a part's (see HeldPart). */
class HeldSegment implements Segment {
  msn: number;
  parts: HeldPart[] = [];
  start: number;
  duration = 0;
  t: number;
  wallclock: number;
  complete = false;
  disc: number;
  discontinuity: boolean;
  tfdt: number;
  #data: Buffer | undefined;

  constructor(o: Omit<Segment, "parts" | "duration" | "complete" | "data">) {
    this.msn = o.msn;
    this.start = o.start;
    this.t = o.t;
    this.wallclock = o.wallclock;
    this.disc = o.disc;
    this.discontinuity = o.discontinuity;
    this.tfdt = o.tfdt;
  }

  get data(): Buffer | undefined {
    if (this.#data) handOut(this.#data);
    return this.#data;
  }

  get held(): Buffer | undefined {
    return this.#data;
  }

  setData(b: Buffer): void {
    retain(b);
    if (this.#data) release(this.#data);
    this.#data = b;
  }

  /** Out of the timeline: its bytes and its parts' are released (a late reader finds none). */
  drop(): void {
    for (const p of this.parts) p.drop();
    const d = this.#data;
    this.#data = undefined;
    if (d) release(d);
  }
}

/** Bytes of a segment or part without handing them out (segments built by tests are plain objects). */
const heldOf = (x: Segment | Part): Buffer | undefined =>
  x instanceof HeldSegment || x instanceof HeldPart ? x.held : x.data;

/** Out of the timeline (plain parts of test-built segments just lose their bytes). */
function dropParts(s: Segment): void {
  if (s instanceof HeldSegment) for (const p of s.parts) p.drop();
  else s.parts = s.parts.map((p) => ({ ...p, data: EMPTY }));
}

type Waiter = { check: () => boolean; resolve: () => void };

/** The longest TARGETDURATION a stream's first GOP may set: a longer first GOP is cut there. */
export const MAX_FIRST_TARGET_S = 10;

/** Whole seconds covering `seconds` (EXT-X-TARGETDURATION is an integer). */
const roundUp = (seconds: number) => Math.max(1, Math.ceil(seconds - 0.001));

export class CmafTimeline {
  init: Buffer | undefined;
  tracks: TrackInfo[] = [];
  readonly segments: Segment[] = [];
  ended = false;
  /** Wall-clock ms at media time 0 of the main track (DASH availabilityStartTime). */
  availabilityStart: number | undefined;
  nextPart = 0;
  /** Current discontinuity sequence; inits by discontinuity sequence (older ones kept while listed). */
  discontinuity = 0;
  readonly inits = new Map<number, Buffer>();
  /** DASH Periods by discontinuity sequence (older ones kept while listed). */
  readonly periods = new Map<number, PeriodInfo>();
  /** The publisher left; waiting up to endGraceMs for it to return before ending. */
  paused = false;
  /**
   * Bumped on every change a playlist or manifest can show (init, part, segment, pause, end, restart): what was
   * rendered from this timeline at one version is valid until the next (the HTTP server's playlist cache).
   */
  version = 0;

  /**
   * Between publishers: the old one left (end grace) or a new one took over and its first segment, which starts
   * a discontinuity, has not come yet. Playlists then list no parts and no hint (see mediaPlaylist).
   */
  get between(): boolean {
    return this.paused || (this.#pendingDisc && !this.open);
  }

  /**
   * EXT-X-TARGETDURATION, fixed for the timeline's life, reconnects included (RFC 8216 6.2.1: it MUST NOT
   * change): the configured segment duration, or the first segment if longer (the encoder's GOP as first seen, at
   * most MAX_FIRST_TARGET_S), rounded up, fixed when the first segment completes. Playlists are served only from
   * then on; before, this is the configured duration.
   */
  get targetDuration(): number {
    return this.#target ?? roundUp(this.#o.segmentSeconds);
  }

  /** PART-TARGET, fixed for the timeline's life: the configured part duration. */
  get partTarget(): number {
    return this.#o.partSeconds;
  }

  #target: number | undefined;
  #grace: NodeJS.Timeout | undefined;
  #nextMsn = 0;
  /** Seconds added to a restarted publisher's media time so `start` keeps increasing across discontinuities. */
  #offset = 0;
  #needSync = true;
  #pendingDisc = false;
  #waiters = new Set<Waiter>();
  readonly #o: TimelineOptions;
  readonly #now: () => number;

  constructor(o: TimelineOptions, now: () => number = Date.now) {
    this.#o = o;
    this.#now = now;
  }

  get options(): TimelineOptions {
    return this.#o;
  }

  /** The track that drives segmentation: video when there is one. */
  get main(): TrackInfo | undefined {
    return this.tracks.find((t) => t.kind === "video") ?? this.tracks.find((t) => t.kind === "audio");
  }

  setInit(ftyp: Buffer, moov: Buffer): void {
    this.init = Buffer.concat([ftyp, moov]);
    this.tracks = parseInit(moov);
    this.inits.set(this.discontinuity, this.init);
    this.#wake();
  }

  /** A `moof` + `mdat` pair from the packager. */
  addFragment(moof: Buffer, mdat: Buffer): void {
    const main = this.main;
    if (!main) return;
    const info = parseMoof(moof, this.tracks).find((t: FragmentTrack) => t.trackId === main.id);
    if (!info) return;
    const duration = info.duration / main.timescale;
    const start = info.baseTime / main.timescale + this.#offset;
    const independent = main.kind !== "video" || info.firstSampleSync;
    let cur = this.segments.at(-1);
    if (this.availabilityStart === undefined) this.availabilityStart = this.#now() - (start + duration) * 1000;
    // Cut on a sync sample once the target is reached (5% slack: encoders put keyframes at 0.99 s too), and
    // anyway before a segment outgrows the target duration (see #tooLong).
    // A segment cut inside a long GOP ends at the next keyframe, however short, so the next one is independent.
    const due = independent && cur && (cur.duration >= this.#o.segmentSeconds * 0.95 || !cur.parts[0]?.independent);
    if (cur && !cur.complete && (due || this.#tooLong(cur, duration))) {
      this.#complete(cur);
      cur = undefined;
    }
    if (!cur || cur.complete) {
      // Players must be able to start at a segment: the first one waits for a sync sample.
      if (!independent && this.#needSync) return;
      this.#needSync = false;
      cur = new HeldSegment({
        msn: this.#nextMsn++,
        start,
        t: info.baseTime + Math.round(this.#offset * main.timescale),
        wallclock: this.#now(),
        disc: this.discontinuity,
        discontinuity: this.#pendingDisc,
        tfdt: info.baseTime,
      });
      this.#pendingDisc = false;
      if (!this.periods.has(cur.disc)) this.periods.set(cur.disc, this.#period(cur, main.timescale, duration));
      this.segments.push(cur);
    }
    const part = new HeldPart(this.nextPart++, join([moof, mdat]), duration, independent);
    cur.parts.push(part);
    cur.duration += duration;
    this.#trim();
    this.#wake();
  }

  /**
   * Would a part of `add` seconds make `s` longer than the target duration allows? Each segment's EXTINF, rounded
   * to the nearest integer, must not exceed TARGETDURATION (RFC 8216 4.3.3.1), which is fixed: a GOP longer than
   * that is cut at a part boundary without a keyframe. Such a segment is not independent (its first part has no
   * INDEPENDENT=YES, and the playlist drops EXT-X-INDEPENDENT-SEGMENTS while it is listed). Before the target is
   * fixed, the first segment is cut at MAX_FIRST_TARGET_S.
   */
  #tooLong(s: Segment, add: number): boolean {
    if (s.parts.length === 0) return false;
    const max =
      this.#target === undefined ? Math.max(MAX_FIRST_TARGET_S, roundUp(this.#o.segmentSeconds)) : this.#target + 0.5;
    return s.duration + add > max - 0.001;
  }

  #complete(s: Segment): void {
    s.complete = true;
    // The muxer writes consecutive parts adjacently: usually a view, not a copy.
    const data = join(s.parts.map((p) => heldOf(p) ?? EMPTY));
    if (s instanceof HeldSegment) s.setData(data);
    else s.data = data;
    this.#target ??= roundUp(Math.max(this.#o.segmentSeconds, s.duration));
  }

  /**
   * A publisher's first segment opens its Period. A later one starts where the wall clock says (a DASH player
   * finds the live edge from availabilityStartTime), never before the previous Period's last segment ends.
   */
  #period(first: Segment, timescale: number, fragment: number): PeriodInfo {
    const prev = this.segments.at(-1);
    const p = prev && this.periods.get(prev.disc);
    if (!prev || !p) return { start: first.start, t0: first.tfdt, timescale };
    const prevEnd = p.start + (prev.tfdt - p.t0) / p.timescale + prev.duration;
    const wall = (this.#now() - (this.availabilityStart ?? this.#now())) / 1000 - fragment;
    return { start: Math.max(prevEnd, wall), t0: first.tfdt, timescale };
  }

  /**
   * The packager finished: close the open segment. With endGraceMs the end waits that long for the publisher to
   * return (players see a live playlist that is not advancing); then playlists get ENDLIST, the MPD becomes static.
   */
  end(): void {
    const cur = this.segments.at(-1);
    if (cur && !cur.complete && cur.parts.length > 0) this.#complete(cur);
    const grace = this.#o.endGraceMs ?? 0;
    if (grace > 0 && !this.ended) {
      this.paused = true;
      clearTimeout(this.#grace);
      this.#grace = setTimeout(() => this.#finish(), grace);
      this.#grace.unref();
      this.#wake();
      return;
    }
    this.#finish();
  }

  #finish(): void {
    clearTimeout(this.#grace);
    this.#grace = undefined;
    this.paused = false;
    this.ended = true;
    this.#wake();
  }

  /**
   * A new publisher took over the path: numbering continues, the next segment starts a new discontinuity
   * sequence with its own init (the new encoder's parameters and timestamps need not match the old ones).
   */
  restart(): void {
    const cur = this.segments.at(-1);
    if (cur && !cur.complete) {
      if (cur.parts.length > 0) this.#complete(cur);
      else this.segments.pop();
    }
    const last = this.segments.at(-1);
    this.#offset = last ? last.start + last.duration : this.#offset;
    if (last) this.discontinuity++;
    this.#pendingDisc = !!last;
    this.#needSync = true;
    this.init = undefined;
    clearTimeout(this.#grace);
    this.#grace = undefined;
    this.paused = false;
    this.ended = false;
    this.#wake();
  }

  #trim(): void {
    const keep = this.#o.segmentCount + 2;
    const complete = this.segments.filter((s) => s.complete).length;
    if (complete > keep)
      for (const gone of this.segments.splice(0, complete - keep)) if (gone instanceof HeldSegment) gone.drop();
    const oldest = this.segments[0]?.disc ?? this.discontinuity;
    for (const d of this.inits.keys()) if (d < oldest) this.inits.delete(d);
    for (const d of this.periods.keys()) if (d < oldest) this.periods.delete(d);
    // Parts are only listed near the live edge; drop their bytes for older segments.
    const edge = this.segments.at(-1)?.start ?? 0;
    for (const s of this.segments)
      if (
        s.complete &&
        s.start + s.duration < edge - 4 * this.#o.segmentSeconds &&
        (heldOf(s.parts[0] as Part)?.length ?? 0) > 0
      )
        dropParts(s);
  }

  /** `listed().length > 0` without building the list (asked on every playlist request). */
  hasListed(): boolean {
    return this.segments.some((s) => s.complete);
  }

  /** Complete segments as listed in playlists (the window). */
  listed(): Segment[] {
    const done = this.segments.filter((s) => s.complete);
    return done.slice(Math.max(0, done.length - this.#o.segmentCount));
  }

  /** The segment being filled (LL-HLS lists its parts), if any. */
  get open(): Segment | undefined {
    const s = this.segments.at(-1);
    return s && !s.complete ? s : undefined;
  }

  segment(msn: number): Segment | undefined {
    return this.segments.find((s) => s.msn === msn);
  }

  part(n: number): Part | undefined {
    const s = this.segmentOfPart(n);
    const p = s?.parts[n - (s.parts[0]?.n ?? 0)];
    return p && (heldOf(p)?.length ?? 0) > 0 ? p : undefined;
  }

  /** A segment's (complete) or part's bytes, held until `unpin(bytes)` (an HTTP answer: when it has closed). */
  pin(x: Segment | Part): Buffer | undefined {
    const b = heldOf(x);
    if (!b || b.length === 0) return undefined;
    retain(b);
    return b;
  }

  unpin(b: Buffer): void {
    release(b);
  }

  /** A segment's size without handing its bytes out. */
  byteLength(s: Segment): number {
    return heldOf(s)?.length ?? 0;
  }

  /** The segment part `n` belongs to (if still kept). */
  segmentOfPart(n: number): Segment | undefined {
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i] as Segment;
      const first = s.parts[0];
      if (first && n >= first.n) return s;
    }
    return undefined;
  }

  /** Does the playlist already contain segment `msn` (complete), or, with `part`, that part or a later one? */
  has(msn: number, part?: number): boolean {
    if (this.ended) return true;
    const last = this.segments.at(-1);
    if (!last) return false;
    if (part === undefined) return this.segments.some((s) => s.complete && s.msn >= msn);
    if (last.msn > msn) return true;
    return last.msn === msn && last.parts.length > part;
  }

  /** Resolves true once `check` holds, false on timeout or abort. */
  waitUntil(check: () => boolean, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          this.#waiters.delete(w);
          resolve(true);
        },
      };
      const onAbort = () => {
        clearTimeout(timer);
        this.#waiters.delete(w);
        resolve(false);
      };
      const timer = setTimeout(onAbort, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(w);
    });
  }

  #wake(): void {
    this.version++;
    for (const w of [...this.#waiters]) if (this.ended || w.check()) w.resolve();
  }
}
