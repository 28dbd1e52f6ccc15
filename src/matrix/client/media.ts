/**
 * Content repository (spec: "Content repository"): upload (direct, or asynchronous: create an mxc:// URI, then PUT
 * its bytes), authenticated download/thumbnail/URL preview under /_matrix/client/v1/media, the legacy
 * /_matrix/media/v3 routes, and the media config. Thumbnails and previews are made by hs.media (service/media.ts).
 * Bytes live in the content-addressed store (hs.cas, src/cas/): an upload is streamed into it and committed (held
 * as "matrix.media:<mediaId>") before its row is written, so a recorded media ID always has its complete bytes, and
 * the same file uploaded twice (by anyone) is stored once. The row's sha256 is the content address (the store
 * resolves a whole-file SHA-256 to its object). Files of earlier versions, hs.mediaDir/<2 chars>/<mediaId>, are
 * still served from there when the store does not have the bytes.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { AmiError } from "../../core/errors.ts";
import { randomString } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { json, type MatrixRequest, type Reply, type Route } from "../http/types.ts";
import { THUMBNAIL_TYPES } from "../service/thumbnailer.ts";
import type { MediaRow } from "../store/types.ts";
import { queryInt } from "../validate.ts";

const MEDIA_ID_RE = /^[A-Za-z0-9_-]{1,255}$/;

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

const mediaPath = (dir: string, mediaId: string) => join(dir, mediaId.slice(0, 2), mediaId);

/** The hold that keeps an upload's bytes in the content-addressed store while its media row exists. */
export const mediaHold = (mediaId: string) => `matrix.media:${mediaId}`;

/** Content-Type and ?filename of an upload, checked. */
function uploadMeta(req: MatrixRequest): { contentType: string; filename: string | null } {
  const ct = req.headers["content-type"];
  const contentType = typeof ct === "string" && ct.length > 0 ? ct : "application/octet-stream";
  if (contentType.length > 255 || /[\r\n]/.test(contentType))
    throw new AmiError("M_INVALID_PARAM", "Invalid Content-Type");
  const filename = req.query.get("filename") || null;
  if (filename !== null && (Buffer.byteLength(filename) > 255 || /[\0\r\n]/.test(filename))) {
    throw new AmiError("M_INVALID_PARAM", "Invalid filename");
  }
  return { contentType, filename };
}

/**
 * Bytes into the content-addressed store (held for `mediaId`), then their row through `write`. Memory per upload is
 * the store's working buffer and the chunks in flight, whatever the size; awaiting the store is the backpressure
 * (the socket is not read faster than chunks are hashed and written).
 */
async function commitMedia(
  hs: Homeserver,
  source: AsyncIterable<Buffer> | Buffer,
  meta: Pick<MediaRow, "mediaId" | "uploader" | "contentType" | "filename">,
  write: (row: MediaRow) => Promise<void>,
): Promise<void> {
  const put = await hs.cas.put(source, { hold: mediaHold(meta.mediaId) });
  const row: MediaRow = { ...meta, size: put.size, sha256: put.sha256, createdTs: Date.now() };
  // Bytes no row names would be held forever (the row's write can fail: a full disk): let GC have them.
  await write(row).catch(async (e) => {
    await hs.cas.release(put.id, mediaHold(meta.mediaId)).catch(() => {});
    throw e;
  });
}

const DAY_MS = 86_400_000;

/**
 * matrix.media.maxUploadBytesPerUserPerDay: refused if the user's uploads of the last 24 hours and `incoming` bytes
 * would pass it. Checked before the body is read (its Content-Length) and again with the stored size before the row
 * is written (uploads running at once can each pass the first check).
 */
async function checkQuota(hs: Homeserver, userId: string, incoming: number): Promise<void> {
  const quota = hs.config.media.maxUploadBytesPerUserPerDay;
  if (quota === null) return;
  const used = await hs.store.media.uploadedBytesSince(userId, Date.now() - DAY_MS);
  if (used + incoming > quota)
    throw new AmiError("M_FORBIDDEN", `Upload quota reached: at most ${quota} bytes per user in 24 hours`);
}

/** The Content-Length an upload announces (0 when chunked). */
const announced = (req: MatrixRequest) => Number(req.headers["content-length"]) || 0;

const mxc = (hs: Homeserver, mediaId: string) => `mxc://${hs.serverName}/${mediaId}`;

async function upload(req: MatrixRequest): Promise<Reply> {
  const { hs } = req;
  const mediaId = randomString(24);
  const uploader = req.requester!.userId;
  const meta = { mediaId, uploader, ...uploadMeta(req) };
  await checkQuota(hs, uploader, announced(req));
  await commitMedia(hs, req.stream!, meta, async (row) => {
    await checkQuota(hs, uploader, row.size);
    await hs.store.media.putMedia(row);
  });
  return json({ content_uri: mxc(hs, mediaId) });
}

/** POST /_matrix/media/v1/create: an mxc:// URI now, its bytes later (at most maxPendingUploads at once). */
async function create(req: MatrixRequest): Promise<Reply> {
  const { hs } = req;
  const { unusedExpirationMs, maxPendingUploads } = hs.config.media;
  const userId = req.requester!.userId;
  const now = Date.now();
  const pending = { mediaId: randomString(24), userId, createdTs: now, expiresTs: now + unusedExpirationMs };
  if (!(await hs.store.media.createPending(pending, maxPendingUploads, now))) {
    const next = (await hs.store.media.firstPendingExpiry(userId, now)) ?? now + 1000;
    throw new AmiError("M_LIMIT_EXCEEDED", `At most ${maxPendingUploads} media IDs may wait for their upload`, {
      retry_after_ms: Math.max(next - now, 1),
    });
  }
  return json({ content_uri: mxc(hs, pending.mediaId), unused_expires_at: pending.expiresTs });
}

/** PUT /_matrix/media/v3/upload/{serverName}/{mediaId}: the bytes of a created ID, by its creator, once. */
async function uploadTo(req: MatrixRequest): Promise<Reply> {
  const { hs } = req;
  const { serverName, mediaId } = req.params;
  const unknown = () => new AmiError("M_NOT_FOUND", "Unknown media ID");
  if (serverName !== hs.serverName || !MEDIA_ID_RE.test(mediaId)) throw unknown();
  const pending = await hs.store.media.getPending(mediaId);
  if (!pending) {
    if (await hs.store.media.getMedia(mediaId))
      throw new AmiError("M_CANNOT_OVERWRITE_MEDIA", "Media ID already has content");
    throw unknown();
  }
  const userId = req.requester!.userId;
  if (pending.userId !== userId) throw new AmiError("M_FORBIDDEN", "Only the creator of the media ID can upload to it");
  if (pending.expiresTs < Date.now()) throw new AmiError("M_NOT_FOUND", "Media ID has expired");
  if (!hs.media.claimUpload(mediaId))
    throw new AmiError("M_CANNOT_OVERWRITE_MEDIA", "An upload to this media ID is already under way");
  try {
    const meta = { mediaId, uploader: userId, ...uploadMeta(req) };
    await checkQuota(hs, userId, announced(req));
    await commitMedia(hs, req.stream!, meta, async (row) => {
      await checkQuota(hs, userId, row.size);
      await hs.store.media.completePending(row);
    });
  } finally {
    hs.media.releaseUpload(mediaId);
  }
  hs.media.uploaded(mediaId);
  return json({});
}

interface Found {
  row: MediaRow;
  size: number;
  open(): Readable;
}

/** Spec `timeout_ms`: default 20 s; capped at 60 s (Synapse's MAXIMUM_ALLOWED_MAX_TIMEOUT_MS). */
const waitMs = (req: MatrixRequest) => Math.min(queryInt(req.query, "timeout_ms", 20_000, 0), 60_000);

/**
 * The row of a media ID. One created (POST /create) but not uploaded yet is waited for, up to `timeout_ms`, then
 * answered 504 M_NOT_YET_UPLOADED; unknown or expired: 404.
 */
async function mediaRow(req: MatrixRequest, mediaId: string): Promise<MediaRow> {
  const { hs } = req;
  const notFound = () => new AmiError("M_NOT_FOUND", "Media not found");
  const deadline = Date.now() + waitMs(req);
  for (;;) {
    const row = await hs.store.media.getMedia(mediaId);
    if (row) return row;
    const pending = await hs.store.media.getPending(mediaId);
    const now = Date.now();
    if (!pending || pending.expiresTs < now) throw notFound();
    if (now >= deadline || req.signal.aborted)
      throw new AmiError("M_NOT_YET_UPLOADED", "Content has not yet been uploaded");
    await hs.media.waitForUpload(mediaId, deadline - now, req.signal);
  }
}

async function find(req: MatrixRequest): Promise<Found> {
  const { serverName, mediaId } = req.params;
  const notFound = () => new AmiError("M_NOT_FOUND", "Media not found");
  // No federation: media of other servers is never here.
  if (serverName !== req.hs.serverName || !MEDIA_ID_RE.test(mediaId)) throw notFound();
  const row = await mediaRow(req, mediaId);
  const { cas } = req.hs;
  const id = await cas.resolve(row.sha256).catch((e) => {
    if (e instanceof AmiError && e.code === "M_NOT_FOUND") return undefined;
    throw e;
  });
  if (id) return { row, size: row.size, open: () => Readable.from(cas.get(id)) };
  // Uploaded before media went into the content-addressed store.
  const path = mediaPath(req.hs.mediaDir, mediaId);
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

async function thumbnail(req: MatrixRequest, lookup = find): Promise<Reply> {
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

/** GET /media/preview_url: OpenGraph data of a URL, its image stored as media of the asking user. */
async function previewUrl(req: MatrixRequest): Promise<Reply> {
  const { hs } = req;
  // Off (the default, as Synapse): the route is not there.
  if (!hs.media.previews.enabled) throw new AmiError("M_UNRECOGNIZED", "URL previews are disabled on this server");
  const url = req.query.get("url");
  if (url === null || url === "") throw new AmiError("M_MISSING_PARAM", "'url': missing");
  queryInt(req.query, "ts", 0, 0);
  const uploader = req.requester!.userId;
  const preview = await hs.media.previews.preview(url, async (bytes, contentType) => {
    const mediaId = randomString(24);
    const meta = { mediaId, uploader, contentType, filename: null };
    await commitMedia(hs, bytes, meta, (row) => hs.store.media.putMedia(row));
    return mxc(hs, mediaId);
  });
  return json(preview);
}

const config = async (req: MatrixRequest): Promise<Reply> =>
  json({ "m.upload.size": req.hs.config.media.maxUploadBytes });

const legacy = (p: string) => [`/_matrix/media/v3/${p}`, `/_matrix/media/r0/${p}`];

export const routes: Route[] = [
  /** POST /_matrix/media/v3/upload */
  { method: "POST", paths: legacy("upload"), auth: "required", rateLimit: true, body: "stream", handler: upload },
  /** POST /_matrix/media/v1/create */
  { method: "POST", paths: ["/_matrix/media/v1/create"], auth: "required", rateLimit: true, handler: create },
  /** PUT /_matrix/media/v3/upload/{serverName}/{mediaId} */
  {
    method: "PUT",
    paths: ["/_matrix/media/v3/upload/{serverName}/{mediaId}"],
    auth: "required",
    rateLimit: true,
    body: "stream",
    handler: uploadTo,
  },
  /** GET /_matrix/client/v1/media/preview_url */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/media/preview_url"],
    auth: "required",
    rateLimit: true,
    holdsOpen: true,
    handler: previewUrl,
  },
  /** GET /_matrix/media/v3/preview_url (legacy; the spec requires auth here too) */
  {
    method: "GET",
    paths: legacy("preview_url"),
    auth: "required",
    rateLimit: true,
    holdsOpen: true,
    handler: previewUrl,
  },
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
