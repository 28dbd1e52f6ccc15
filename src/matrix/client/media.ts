/**
 * Content repository (spec: "Content repository"): authenticated download and thumbnail under
 * /_matrix/client/v1/media, the legacy /_matrix/media/v3 routes, and the media config. Uploads are in
 * media-upload.ts (the bytes live in the content-addressed store, hs.cas; files of earlier versions,
 * hs.mediaDir/<2 chars>/<mediaId>, are still served from there when the store does not have them), URL previews in
 * url-preview.ts; thumbnails are made by hs.media (service/media.ts).
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { AmiError } from "../../core/errors.ts";
import { remoteMedia } from "../federation/remote-media.ts";
import { json, type MatrixRequest, type Reply, type Route } from "../http/types.ts";
import { mediaPath } from "../service/media.ts";
import { THUMBNAIL_TYPES } from "../service/thumbnailer.ts";
import type { MediaRow } from "../store/types.ts";
import { queryInt } from "../validate.ts";

/** What a media ID of this server looks like (anything else is unknown without a store read). */
export const MEDIA_ID_RE = /^[A-Za-z0-9_-]{1,255}$/;

/**
 * Spec v1.11 "media freeze": media uploaded after the freeze is served only by the authenticated
 * /_matrix/client/v1/media routes; the legacy unauthenticated ones answer 404 for it. This server froze on this
 * date (when the rule was put in): files uploaded before stay readable by old clients, every later upload is new.
 */
export const MEDIA_FREEZE_TS = Date.UTC(2026, 11, 6);

/** Types a browser may render inline without running script (the spec's suggested list, as Synapse). */
const INLINE_TYPES = new Set([
  "text/css",
  "text/plain",
  "text/csv",
  "application/json",
  "application/ld+json",
  "image/jpeg",
  "image/gif",
  "image/png",
  "image/apng",
  "image/webp",
  "image/avif",
  "video/mp4",
  "video/webm",
  "video/ogg",
  "video/quicktime",
  "audio/mp4",
  "audio/webm",
  "audio/aac",
  "audio/mpeg",
  "audio/ogg",
  "audio/wave",
  "audio/wav",
  "audio/x-wav",
  "audio/x-pn-wav",
  "audio/flac",
  "audio/x-flac",
]);

const baseType = (t: string) => t.split(";")[0].trim().toLowerCase();

const rfc5987 = (s: string) =>
  encodeURIComponent(s).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export function contentDisposition(contentType: string, filename: string | null): string {
  const kind = INLINE_TYPES.has(baseType(contentType)) ? "inline" : "attachment";
  return filename ? `${kind}; filename*=UTF-8''${rfc5987(filename)}` : kind;
}

export interface Found {
  row: MediaRow;
  size: number;
  open(): Readable;
}

/** Spec `timeout_ms`: default 20 s; capped at 60 s (Synapse's MAXIMUM_ALLOWED_MAX_TIMEOUT_MS). */
const waitMs = (req: MatrixRequest) => Math.min(queryInt(req.query, "timeout_ms", 20_000, 0), 60_000);

/**
 * The row of a media ID. One created (POST /create) but not uploaded yet is waited for, up to `timeout_ms`, then
 * answered 504 M_NOT_YET_UPLOADED; unknown or expired: 404. The upload may commit on another worker: the watch
 * hears it over the cluster bus (service/media.ts), and is taken before the first read so no wake-up falls between.
 */
async function mediaRow(req: MatrixRequest, mediaId: string): Promise<MediaRow> {
  const { hs } = req;
  const notFound = () => new AmiError("M_NOT_FOUND", "Media not found");
  const deadline = Date.now() + waitMs(req);
  const row = await hs.store.media.getMedia(mediaId);
  if (row) return row;
  const watch = hs.media.watchUpload(mediaId);
  try {
    for (;;) {
      const pending = await hs.store.media.getPending(mediaId);
      // Read after the pending row: an upload that committed in between (it deletes that row) is found here.
      const uploaded = await hs.store.media.getMedia(mediaId);
      if (uploaded) return uploaded;
      const now = Date.now();
      if (!pending || pending.expiresTs < now) throw notFound();
      if (now >= deadline || req.signal.aborted)
        throw new AmiError("M_NOT_YET_UPLOADED", "Content has not yet been uploaded");
      await watch.wait(deadline - now, req.signal);
    }
  } finally {
    watch.close();
  }
}

async function find(req: MatrixRequest): Promise<Found> {
  const { serverName, mediaId } = req.params;
  if (serverName === req.hs.serverName) return findLocal(req, mediaId);
  if (!MEDIA_ID_RE.test(mediaId)) throw new AmiError("M_NOT_FOUND", "Media not found");
  if (!req.hs.config.federation.enabled)
    throw new AmiError("M_NOT_FOUND", `Media of ${serverName} is not available here: federation is disabled`);
  // Another server's media: from our remote media cache, else fetched over federation into it.
  return openRow(req, await remoteMedia(req.hs, serverName, mediaId, req.signal), null);
}

/** Local media by ID (also for the federation media routes). */
export async function findLocal(req: MatrixRequest, mediaId: string): Promise<Found> {
  if (!MEDIA_ID_RE.test(mediaId)) throw new AmiError("M_NOT_FOUND", "Media not found");
  return openRow(req, await mediaRow(req, mediaId), mediaId);
}

/** The bytes of a row; `legacyId`: a local upload that may predate the content-addressed store. */
async function openRow(req: MatrixRequest, row: MediaRow, legacyId: string | null): Promise<Found> {
  const notFound = () => new AmiError("M_NOT_FOUND", "Media not found");
  // Quarantined media (admin API) is served to no one, as Synapse — but a server admin who asks for it explicitly.
  const bypass = req.requester?.isAdmin && req.query.get("admin_unsafely_bypass_quarantine") === "true";
  if (row.quarantinedBy && !bypass) throw notFound();
  const { cas } = req.hs;
  const id = await cas.resolve(row.sha256).catch((e) => {
    if (e instanceof AmiError && e.code === "M_NOT_FOUND") return undefined;
    throw e;
  });
  if (id) return { row, size: row.size, open: () => Readable.from(cas.get(id)) };
  // Uploaded before media went into the content-addressed store.
  if (legacyId === null) throw notFound();
  const path = mediaPath(req.hs.mediaDir, legacyId);
  const st = await stat(path).catch(() => null);
  if (!st) throw notFound();
  return { row, size: st.size, open: () => createReadStream(path) };
}

/** Spec "Content repository" security: never let served media run script in our origin. */
const SAFE_HEADERS = {
  "Content-Security-Policy":
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
  "Cross-Origin-Resource-Policy": "cross-origin",
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "private, max-age=86400",
};

function serve({ row, size, open }: Found, filename: string | null): Reply {
  return {
    status: 200,
    body: open(),
    headers: {
      "Content-Type": row.contentType,
      "Content-Length": String(size),
      "Content-Disposition": contentDisposition(row.contentType, filename),
      ...SAFE_HEADERS,
    },
  };
}

async function download(req: MatrixRequest): Promise<Reply> {
  const found = await find(req);
  return serve(found, req.params.fileName || found.row.filename);
}

/** The legacy routes' view: media uploaded after the freeze does not exist there. */
async function findFrozen(req: MatrixRequest): Promise<Found> {
  // Other servers' media came after the freeze (and an unauthenticated request must not make us fetch it).
  if (req.params.serverName !== req.hs.serverName)
    throw new AmiError("M_NOT_FOUND", "Media not found (remote media is served only by /_matrix/client/v1/media)");
  const found = await find(req);
  if (found.row.createdTs >= MEDIA_FREEZE_TS)
    throw new AmiError("M_NOT_FOUND", "Media not found (newer media is served only by /_matrix/client/v1/media)");
  return found;
}

async function legacyDownload(req: MatrixRequest): Promise<Reply> {
  const found = await findFrozen(req);
  return serve(found, req.params.fileName || found.row.filename);
}

/** The whole of a stored file (originals to thumbnail: at most maxUploadBytes). */
async function readAll(found: Found): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of found.open()) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export async function thumbnail(req: MatrixRequest, lookup = find): Promise<Reply> {
  for (const k of ["width", "height"])
    if (req.query.get(k) === null) throw new AmiError("M_MISSING_PARAM", `'${k}': missing`);
  const width = queryInt(req.query, "width", 0, 1, 10_000);
  const height = queryInt(req.query, "height", 0, 1, 10_000);
  const method = req.query.get("method") ?? "scale";
  if (method !== "crop" && method !== "scale") throw new AmiError("M_INVALID_PARAM", "'method' must be crop or scale");
  const animatedParam = req.query.get("animated");
  if (animatedParam !== null && animatedParam !== "true" && animatedParam !== "false")
    throw new AmiError("M_INVALID_PARAM", "'animated' must be true or false");
  const found = await lookup(req);
  if (!THUMBNAIL_TYPES.has(baseType(found.row.contentType)))
    throw new AmiError("M_UNKNOWN", "Cannot generate thumbnails for the requested content", {}, 400);
  const t = await req.hs.media.thumbnails.thumbnail(found.row.sha256, () => readAll(found), {
    width,
    height,
    method,
    animated: animatedParam === "true",
  });
  return {
    status: 200,
    body: t.bytes,
    headers: {
      "Content-Type": t.contentType,
      "Content-Length": String(t.bytes.length),
      // Spec: MUST be inline, SHOULD name a file.
      "Content-Disposition": `inline; filename="thumbnail.${t.contentType.slice("image/".length)}"`,
      ...SAFE_HEADERS,
    },
  };
}

const config = async (req: MatrixRequest): Promise<Reply> =>
  json({ "m.upload.size": req.hs.config.media.maxUploadBytes });

/** A deprecated /_matrix/media/v3 route, also under r0. */
export const legacy = (p: string) => [`/_matrix/media/v3/${p}`, `/_matrix/media/r0/${p}`];

export const routes: Route[] = [
  /** GET /_matrix/client/v1/media/config */
  { method: "GET", paths: ["/_matrix/client/v1/media/config"], auth: "required", handler: config },
  /** GET /_matrix/media/v3/config (legacy; the spec requires auth here too) */
  { method: "GET", paths: legacy("config"), auth: "required", handler: config },
  /** GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName?} */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName?}"],
    auth: "required",
    holdsOpen: true,
    handler: download,
  },
  /** GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName?} (legacy, unauthenticated, frozen) */
  {
    method: "GET",
    paths: legacy("download/{serverName}/{mediaId}/{fileName?}"),
    auth: "none",
    holdsOpen: true,
    handler: legacyDownload,
  },
  /** GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"],
    auth: "required",
    holdsOpen: true,
    handler: (req) => thumbnail(req),
  },
  /** GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (legacy, unauthenticated, frozen) */
  {
    method: "GET",
    paths: legacy("thumbnail/{serverName}/{mediaId}"),
    auth: "none",
    holdsOpen: true,
    handler: (req) => thumbnail(req, findFrozen),
  },
];
