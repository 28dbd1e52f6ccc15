/**
 * HTTP-FLV out (as SRS serves it, for flv.js / mpegts.js and ffmpeg): `GET /<path>.flv` streams the live path as
 * one endless FLV file with chunked transfer encoding: the FLV header, `onMetaData`, the sequence headers, then
 * tags from a hub reader starting at the last keyframe. The reader follows the path across a publisher's
 * reconnect within the end grace (path-reader.ts). A connection that is not draining waits for it with nothing
 * read from the hub (frames pile up only in the hub reader's bounded queue, which then skips to the next
 * keyframe) and is closed after `stallMs` without draining.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
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
  log: Logger;
}

/** A just-published path may not have both codec headers yet; the FLV header's audio/video flags need them. */
const CONFIG_WAIT_MS = 3000;

/**
 * The last tag made of each hub frame, for the next viewer that sends it at the same output time: viewers that
 * started at the same keyframe (PathReader times count from there) share one Buffer instead of each copying the
 * frame into its own tag. Lives as long as the frame (the hub's GOP and reader queues).
 */
const tags = new WeakMap<Frame, { ts: number; tag: Buffer }>();

function tagOf(frame: Frame, ts: number): Buffer {
  const c = tags.get(frame);
  if (c?.ts === ts) return c.tag;
  const tag = flvTag(tagType(frame), ts, frame.data);
  tags.set(frame, { ts, tag });
  return tag;
}

/** Resolves true on 'drain', false when the response closes or `ms` pass first. */
function drained(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(t);
      res.off("drain", onDrain);
      res.off("close", onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    const t = setTimeout(() => done(false), ms);
    res.once("drain", onDrain);
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
  // Tags are written as the publisher's frames arrive (PathReader.listen, then poll), not one awaited `next()`
  // per frame: with 100 viewers that was 100 promises and async resumptions per frame. `next()` is awaited only
  // when the publisher has left (it waits for the next one within the grace).
  await new Promise<void>((done) => {
    /** Waiting for 'drain' or for the next publisher: frames stay in the hub reader's queue meanwhile. */
    let waiting = false;
    const finish = () => {
      reader.listen(() => {});
      done();
    };
    const send = (t: TimedFrame): boolean => {
      if (res.write(tagOf(t.frame, t.ts))) return true;
      waiting = true;
      drained(res, o.stallMs).then((ok) => {
        waiting = false;
        if (ok) return drain();
        if (!res.destroyed) o.log.info("http-flv reader stalled; closed", { path: stream.path, remote });
        res.destroy();
        finish();
      });
      return false;
    };
    /** Runs in the publisher's `write`: must not throw. */
    const drain = () => {
      if (waiting) return;
      try {
        for (;;) {
          if (reader.closed || res.destroyed) return finish();
          const t = reader.poll();
          if (t) {
            if (!send(t)) return;
            continue;
          }
          if (!reader.atEnd) return;
          // The publisher left: wait (within the grace) for the next one's first frame.
          waiting = true;
          reader.next().then((n) => {
            waiting = false;
            if (!n || res.destroyed) return finish();
            if (send(n)) drain();
          });
          return;
        }
      } catch (e) {
        o.log.info("http-flv write failed; closed", { path: stream.path, remote, error: (e as Error).message });
        res.destroy();
        finish();
      }
    };
    reader.listen(drain);
    drain();
  });
  reader.close();
  if (!res.destroyed) res.end();
}
