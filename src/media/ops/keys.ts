/**
 * `ami-streams stream key create|revoke|list` and `stream sign`: stream keys and signed playback URLs. They work on
 * the files under <home>/data/media directly (the media service re-reads them), so no running service is needed.
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp, type OpContext } from "../../core/ops.ts";
import { KeyStore } from "../auth/keys.ts";
import { parseTtl, Signer } from "../auth/sign.ts";
import { validPath } from "../hub.ts";
import { mediaService } from "../service.ts";
import { encodePath } from "./client.ts";

const dataDir = (ctx: OpContext) => ctx.paths.serviceData("media");
const keyView = z.object({ id: z.string(), path: z.string(), created: z.string() });
const hostOf = (ctx: OpContext) => new URL(mediaService.baseUrl(ctx.config)).hostname;

export const streamKeyCreate = defineOp({
  name: "stream.key.create",
  summary: "Create a stream key for publishing to a path (shown once; only its hash is stored)",
  input: z.object({ path: z.string().min(1).describe("stream path the key may publish to, e.g. live/cam1") }).strict(),
  output: keyView.extend({
    key: z.string(),
    rtmpUrl: z.string(),
    obs: z.object({ server: z.string(), streamKey: z.string() }),
    srtStreamId: z.string(),
    /** When media.rtsp is enabled: the RTSP publish URL (the key may instead be the Digest password). */
    rtspUrl: z.string().optional(),
  }),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  positional: ["path"],
  human: (k) =>
    [
      `key ${k.id} for ${k.path}: ${k.key}`,
      `  ffmpeg: ${k.rtmpUrl}`,
      `  OBS: server ${k.obs.server}, stream key ${k.obs.streamKey}`,
      `  SRT streamid: ${k.srtStreamId}`,
      ...(k.rtspUrl ? [`  RTSP: ${k.rtspUrl} (or the key as the Digest password, any user name)`] : []),
      "  (the key is not shown again; revoke with: ami-streams stream key revoke <id>)",
    ].join("\n"),
  async run({ path }, ctx) {
    const { key, stored } = new KeyStore(dataDir(ctx)).create(path);
    const rtmp = `rtmp://${hostOf(ctx)}:${ctx.config.media.rtmpPort}`;
    const [app, ...rest] = path.split("/");
    return {
      id: stored.id,
      path,
      created: stored.created,
      key,
      rtmpUrl: `${rtmp}/${path}?key=${key}`,
      obs: { server: `${rtmp}/${app}`, streamKey: rest.length ? `${rest.join("/")}?key=${key}` : key },
      srtStreamId: `publish:${path}:${key}`,
      ...(ctx.config.media.rtsp.enabled
        ? { rtspUrl: `rtsp://${hostOf(ctx)}:${ctx.config.media.rtsp.port}/${path}?key=${key}` }
        : {}),
    };
  },
});

export const streamKeyRevoke = defineOp({
  name: "stream.key.revoke",
  summary: "Revoke a stream key (by its id from `stream key list`, or the key itself); new publishes with it fail",
  input: z.object({ id: z.string().min(1).describe("key id (or the key)") }).strict(),
  output: keyView,
  annotations: { readOnly: false, destructive: true, idempotent: false },
  positional: ["id"],
  human: (k) => `revoked key ${k.id} for ${k.path}`,
  async run({ id }, ctx) {
    const k = new KeyStore(dataDir(ctx)).revoke(id);
    return { id: k.id, path: k.path, created: k.created };
  },
});

export const streamKeyList = defineOp({
  name: "stream.key.list",
  summary: "List stream keys (ids, paths, creation times; never the keys)",
  input: z.object({ path: z.string().min(1).optional().describe("only keys for this stream path") }).strict(),
  output: z.object({ keys: z.array(keyView) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) => [...o.keys.map((k) => `${k.id}  ${k.path}  ${k.created}`), `${o.keys.length} key(s)`].join("\n"),
  async run({ path }, ctx) {
    const keys = new KeyStore(dataDir(ctx)).list(path).map((k) => ({ id: k.id, path: k.path, created: k.created }));
    return { keys };
  },
});

export const streamSign = defineOp({
  name: "stream.sign",
  summary: "A signed playback URL for a path with `read: signed`, valid for --ttl (default 1h)",
  input: z
    .object({
      path: z.string().min(1).describe("stream path, e.g. live/cam1"),
      ttl: z.string().default("1h").describe("lifetime: 90s, 10m, 1h, 7d (default 1h)"),
    })
    .strict(),
  output: z.object({
    path: z.string(),
    expires: z.string(),
    query: z.string(),
    page: z.string(),
    hls: z.string(),
    dash: z.string(),
    flv: z.string(),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: false },
  positional: ["path"],
  human: (s) =>
    [`${s.page}`, `  HLS ${s.hls}`, `  DASH ${s.dash}`, `  FLV ${s.flv}`, `  valid until ${s.expires}`].join("\n"),
  async run({ path, ttl }, ctx) {
    if (!validPath(path)) throw new AmiError("AMI_INVALID_INPUT", `invalid stream path '${path}'`);
    const secs = parseTtl(ttl);
    if (!secs) throw new AmiError("AMI_INVALID_INPUT", `'ttl' must look like 90s, 10m, 1h or 7d (got '${ttl}')`);
    const exp = Math.floor(Date.now() / 1000) + secs;
    const query = new Signer(dataDir(ctx)).query(path, exp);
    const base = `${mediaService.baseUrl(ctx.config)}/${encodePath(path)}/`;
    return {
      path,
      expires: new Date(exp * 1000).toISOString(),
      query,
      page: `${base}?${query}`,
      hls: `${base}index.m3u8?${query}`,
      dash: `${base}index.mpd?${query}`,
      flv: `${mediaService.baseUrl(ctx.config)}/${encodePath(path)}.flv?${query}`,
    };
  },
});

export const keyOps = [streamKeyCreate, streamKeyRevoke, streamKeyList, streamSign];
