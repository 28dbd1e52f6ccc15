/**
 * HTTP-FLV out (as SRS serves it, for flv.js / mpegts.js and ffmpeg): `GET /<path>.flv` streams the live path as
 * one endless FLV file with chunked transfer encoding: the FLV header, `onMetaData`, the sequence headers, then
 * tags from a hub reader starting at the last keyframe. The reader follows the path across a publisher's
 * reconnect within the end grace (path-reader.ts). A connection that is not draining waits for it with nothing
 * read from the hub (frames pile up only in the hub reader's bounded queue, which then skips to the next
 * keyframe) and is closed after `stallMs` without draining.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Writable } from "node:stream";
import { holdOpen, type ListenerLimits } from "../../../core/http/server.ts";
import type { Logger } from "../../../core/logger.ts";
import type { Frame } from "../../frame.ts";
import type { Hub, MediaStream } from "../../hub.ts";
import { PathReader, type TimedFrame } from "../../path-reader.ts";
import { configsReady } from "../../protocols/flv/from-stream.ts";
import { flvHeader, flvTag, TAG_SCRIPT, tagType } from "../../protocols/flv/tag.ts";
import { metadataBody } from "../../protocols/rtmp/from-stream.ts";

export interface FlvOptions {
  hub: Hub;
  /** media.endGraceSeconds: how long a reader waits for a publisher that left. */
  graceMs: number;
  /** A response that does not drain for this long is closed. */
  stallMs: number;
  /** media.httpFlvMergeMs: frames of this many ms go to a viewer in one write; 0: each as it arrives. */
  mergeMs: number;
  log: Logger;
}

/** A just-published path may not have both codec headers yet; the FLV header's audio/video flags need them. */
const CONFIG_WAIT_MS = 3000;

const viaRes = process.env.BENCH_FLV_VIA_RES === "1";

/**
 * The last tag made of each hub frame, for the next viewer that sends it at the same output time: viewers that
 * started at the same keyframe (PathReader times count from there) share one Buffer instead of each copying the
 * frame into its own tag. The Buffer is the whole HTTP/1.1 chunk (`<hex length>\r\n`, the tag, `\r\n`, as
 * node:http frames a `res.write`), so each viewer's socket gets one write per frame instead of four stream writes,
 * a cork and a deferred uncork. Lives as long as the frame (the hub's GOP and reader queues).
 */
const tags = new WeakMap<Frame, { ts: number; chunk: Buffer }>();
const CRLF = 0x0d0a;

export function chunkOf(frame: Frame, ts: number): Buffer {
  const c = tags.get(frame);
  if (c?.ts === ts) return c.chunk;
  const data = frame.data;
  const size = 11 + data.length + 4;
  const hex = size.toString(16);
  const at = hex.length + 2;
  const b = Buffer.allocUnsafe(at + size + 2);
  b.write(hex, 0, "latin1");
  b.writeUInt16BE(CRLF, hex.length);
  b[at] = tagType(frame);
  b.writeUIntBE(data.length, at + 1, 3);
  const t = Math.max(0, Math.floor(ts)) >>> 0;
  b.writeUIntBE(t & 0xffffff, at + 4, 3);
  b[at + 7] = (t >>> 24) & 0xff;
  b.writeUIntBE(0, at + 8, 3); // StreamID
  data.copy(b, at + 11);
  b.writeUInt32BE(11 + data.length, at + 11 + data.length);
  b.writeUInt16BE(CRLF, at + size);
  tags.set(frame, { ts, chunk: b });
  return b;
}

/** The tag alone (inside its chunk), for a response written through node:http. */
export function tagOf(frame: Frame, ts: number): Buffer {
  const chunk = chunkOf(frame, ts);
  const at = chunk.indexOf(CRLF >> 8) + 2;
  return chunk.subarray(at, chunk.length - 2);
}

/**
 * One viewer's write of several chunks: their concatenation, made once and shared by every viewer whose batch is
 * the same chunks (the same Buffers, so the same bytes), keyed by its first chunk. A single chunk is itself.
 */
const batches = new WeakMap<Buffer, { parts: Buffer[]; batch: Buffer }>();

/** Up to this many chunks are copied into one shared batch (a merge window holds 2 to 5 frames). */
const SHARED_BATCH = 8;

/** Chunks a viewer writes at once at most. */
const MAX_WRITE = 32;

export function batchOf(parts: Buffer[]): Buffer {
  const first = parts[0] as Buffer;
  if (parts.length === 1) return first;
  const c = batches.get(first);
  if (c && c.parts.length === parts.length && c.parts.every((p, i) => p === parts[i])) return c.batch;
  const batch = Buffer.concat(parts);
  batches.set(first, { parts: [...parts], batch });
  return batch;
}

/**
 * The merge timer: viewers with frames queued since the last tick drain together when it fires. One timer for
 * every HTTP-FLV viewer of the process (not one per connection); it runs only while frames are waiting.
 */
let due = new Set<() => void>();
let armed = false;

function merge(drain: () => void, ms: number): void {
  due.add(drain);
  if (armed) return;
  armed = true;
  setTimeout(() => {
    armed = false;
    const now = due;
    due = new Set();
    for (const d of now) d();
  }, ms);
}

/** Resolves true on `target`'s 'drain', false when the response closes or `ms` pass first. */
function drained(target: Writable, res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(t);
      target.off("drain", onDrain);
      res.off("close", onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    const t = setTimeout(() => done(false), ms);
    target.once("drain", onDrain);
    res.once("close", onClose);
  });
}

export async function serveFlv(
  req: IncomingMessage,
  res: ServerResponse,
  stream: MediaStream,
  limits: ListenerLimits,
  o: FlvOptions,
): Promise<void> {
  const headers = { "content-type": "video/x-flv", "cache-control": "no-cache" };
  if (req.method === "HEAD") {
    res.writeHead(200, headers).end();
    return;
  }
  const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
  // Made before waiting for the headers: it holds them and the current GOP from now on.
  const reader = new PathReader(o.hub, stream, { protocol: "flv", remote, graceMs: o.graceMs });
  res.once("close", () => reader.close());
  // Streaming (and a publisher's reconnect gap) is not an idle connection: the stall timer below guards it.
  holdOpen(req, res, limits);
  if (!stream.ended) await configsReady(stream, CONFIG_WAIT_MS);
  if (reader.closed) return;
  res.writeHead(200, headers);
  res.write(flvHeader(!!stream.audioConfig, !!stream.videoConfig));
  res.write(flvTag(TAG_SCRIPT, 0, metadataBody(stream)));
  // Tags are taken with `poll` when the merge timer fires (PathReader.listen says a frame is queued), not one
  // awaited `next()` per frame: with 100 viewers that was 100 promises and async resumptions per frame. `next()`
  // is awaited only when the publisher has left (it waits for the next one within the grace).
  await new Promise<void>((done) => {
    /** Waiting for 'drain' or for the next publisher: frames stay in the hub reader's queue meanwhile. */
    let waiting = false;
    const finish = () => {
      reader.listen(() => {});
      done();
    };
    // Chunks go straight to the socket when this response owns it and frames its body as chunks (HTTP/1.1; the
    // FLV header and metadata above are already queued on it, in order); otherwise (HTTP/1.0, a pipelined request
    // still waiting for the socket) through node:http. BENCH_FLV_VIA_RES=1 forces the latter (A/B benches).
    const socket = res.socket as (Socket & { _httpMessage?: unknown }) | null;
    const direct =
      !viaRes &&
      socket !== null &&
      socket._httpMessage === res &&
      (res as { chunkedEncoding?: boolean }).chunkedEncoding === true;
    /** Chunks (direct) or tags (through node:http) polled since the last write. */
    const parts: Buffer[] = [];
    /** Writes what `parts` holds: one socket write for all of them (a batch shared with the viewers that got the same chunks). */
    const flush = (): boolean => {
      if (parts.length === 0) return true;
      let ok = true;
      if (!direct) for (const t of parts) ok = res.write(t);
      else if (parts.length <= SHARED_BATCH) ok = socket.write(batchOf(parts));
      else {
        // A long batch (a new viewer's GOP, a viewer catching up after backpressure) is its own: one writev
        // instead of a copy no other viewer would share.
        socket.cork();
        for (const c of parts) ok = socket.write(c);
        socket.uncork();
      }
      parts.length = 0;
      if (ok) return true;
      waiting = true;
      drained(direct ? socket : res, res, o.stallMs).then((ok) => {
        waiting = false;
        if (ok) return drain();
        if (!res.destroyed) o.log.info("http-flv reader stalled; closed", { path: stream.path, remote });
        res.destroy();
        finish();
      });
      return false;
    };
    const take = (t: TimedFrame) => parts.push(direct ? chunkOf(t.frame, t.ts) : tagOf(t.frame, t.ts));
    /** Runs from the merge timer or the publisher's `write`: must not throw. */
    const drain = () => {
      if (waiting) return;
      try {
        for (;;) {
          if (reader.closed || res.destroyed) return finish();
          const t = reader.poll();
          if (t) {
            take(t);
            // Catching up (after a wait for 'drain'): in bounded writes, so what the hub reader holds still skips
            // to the next keyframe for a viewer that cannot keep up, instead of all of it going to the socket.
            if (parts.length >= MAX_WRITE && !flush()) return;
            continue;
          }
          if (!flush() || !reader.atEnd) return;
          // The publisher left: wait (within the grace) for the next one's first frame.
          waiting = true;
          reader.next().then((n) => {
            waiting = false;
            if (!n || res.destroyed) return finish();
            take(n);
            if (flush()) drain();
          });
          return;
        }
      } catch (e) {
        parts.length = 0;
        o.log.info("http-flv write failed; closed", { path: stream.path, remote, error: (e as Error).message });
        res.destroy();
        finish();
      }
    };
    // Frames queued by the publisher wait in the hub reader for the merge timer (one for all viewers), then go
    // out in one write; with mergeMs 0 they are written as they arrive.
    reader.listen(o.mergeMs > 0 ? () => merge(drain, o.mergeMs) : drain);
    drain();
  });
  reader.close();
  if (!res.destroyed) res.end();
}
