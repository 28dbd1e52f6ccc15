/**
 * `/<path>/ts.m3u8` and `/<path>/ts<msn>.ts`: the MPEG-TS HLS variant for legacy players (protocols/hls/
 * ts-variant.ts), beside the fMP4 (LL-)HLS of the same path and behind the same read check and URL signing (the
 * server routes both through `readAllowed`; a signed playlist's segment URIs get the signature). A path's
 * TsVariant exists only while it is being read: made on the first request, dropped `idleMs` after the last.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { AmiError } from "../../../core/errors.ts";
import { sendError } from "../../../core/http/reply.ts";
import { holdOpen, type ListenerLimits } from "../../../core/http/server.ts";
import type { Outputs, PathOutput } from "../../outputs.ts";
import type { CmafTimeline } from "../../protocols/fmp4/timeline.ts";
import { holdMs } from "../../protocols/hls/advance.ts";
import { TS_PLAYLIST, TsVariant, tsPlaylist, tsSegmentMsn } from "../../protocols/hls/ts-variant.ts";
import { reply } from "./reply.ts";

export interface TsOptions {
  /** A path's TS variant is dropped after this long without a TS request. */
  idleMs: number;
}

/** How long a first playlist request waits for the first segment of a just-published stream. */
const FIRST_SEGMENT_WAIT_MS = 8000;

const variants = new WeakMap<CmafTimeline, { v: TsVariant; timer: NodeJS.Timeout }>();

/** The path's TS variant, made now if needed; its idle timer restarts. */
function variantOf(t: CmafTimeline, idleMs: number): TsVariant {
  let e = variants.get(t);
  if (!e) {
    const v = new TsVariant(t);
    const timer = setTimeout(() => variants.delete(t), idleMs);
    timer.unref();
    e = { v, timer };
    variants.set(t, e);
  } else e.timer.refresh();
  return e.v;
}

/** The path's TS variant if one is being read (tests: a path nobody reads as TS has none). */
export const activeTsVariant = (t: CmafTimeline): TsVariant | undefined => variants.get(t)?.v;

export const isTsFile = (file: string): boolean => file === TS_PLAYLIST || tsSegmentMsn(file) !== undefined;

export async function serveTsFile(
  req: IncomingMessage,
  res: ServerResponse,
  out: PathOutput,
  outputs: Outputs,
  file: string,
  limits: ListenerLimits,
  o: TsOptions,
): Promise<void> {
  const t = out.packager.timeline;
  const ac = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) ac.abort();
  });
  outputs.touch(out, `${req.socket.remoteAddress}|${req.headers["user-agent"] ?? ""}`);
  const send = (type: string, body: Buffer, cache: string) => {
    out.httpBytesOut += body.length;
    reply(res, { status: 200, type, body, cache });
  };
  const notFound = (message: string): void => {
    sendError(res, new AmiError("M_NOT_FOUND", message, {}, 404));
  };
  const variant = variantOf(t, o.idleMs);
  if (file === TS_PLAYLIST) {
    const ready = () => t.listed().length > 0 || t.ended;
    if (!ready()) holdOpen(req, res, limits);
    if (!(await t.waitUntil(ready, FIRST_SEGMENT_WAIT_MS, ac.signal)))
      return ac.signal.aborted ? undefined : notFound(`stream '${out.path}' is not ready yet`);
    return send("application/vnd.apple.mpegurl", Buffer.from(tsPlaylist(t)), "no-cache");
  }
  const msn = tsSegmentMsn(file) as number;
  // The segment being filled is held until complete, like `seg<N>.m4s`.
  if (t.open?.msn === msn) {
    holdOpen(req, res, limits);
    await t.waitUntil(() => !!t.segment(msn)?.complete, holdMs(t), ac.signal);
    if (ac.signal.aborted) return;
  }
  let body: Buffer | undefined;
  try {
    body = variant.segment(msn);
  } catch (e) {
    // A segment that cannot be remuxed is one missing segment for TS players, not a failed request pipeline.
    return notFound(`segment ${msn} cannot be remuxed to MPEG-TS: ${(e as Error).message}`);
  }
  if (!body) return notFound("no such segment");
  send("video/mp2t", body, "max-age=60");
}
