/**
 * Content repository (spec: "Content repository"): upload, authenticated download/thumbnail under
 * /_matrix/client/v1/media, the legacy /_matrix/media/v3 routes, and the media config.
 * Bytes live in the content-addressed store (hs.cas, src/cas/): an upload is streamed into it and committed (held
 * as "matrix.media:<mediaId>") before its row is written, so a recorded media ID always has its complete bytes, and
 * the same file uploaded twice (by anyone) is stored once. The row's sha256 is the content address (the store
 * resolves a whole-file SHA-256 to its object). Files of earlier versions, hs.mediaDir/<2 chars>/<mediaId>, are
 * still served from there when the store does not have the bytes.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { AmiError } from "../../core/errors.ts";
import { randomString } from "../events/ids.ts";
import { json, type MatrixRequest, type Reply, type Route } from "../http/types.ts";
import { mediaHold, mediaPath } from "../service/media.ts";
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

/** Raster images a client can scale itself: served as their own "thumbnail" (there is no resizer here). */
const THUMBNAILABLE = new Set(["image/jpeg", "image/png", "image/gif", "image/webp", "image/apng", "image/avif"]);

const baseType = (t: string) => t.split(";")[0].trim().toLowerCase();

const rfc5987 = (s: string) =>
  encodeURIComponent(s).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export function contentDisposition(contentType: string, filename: string | null): string {
  const kind = INLINE_TYPES.has(baseType(contentType)) ? "inline" : "attachment";
  return filename ? `${kind}; filename*=UTF-8''${rfc5987(filename)}` : kind;
}

async function upload(req: MatrixRequest): Promise<Reply> {
  const { hs } = req;
  const ct = req.headers["content-type"];
  const contentType = typeof ct === "string" && ct.length > 0 ? ct : "application/octet-stream";
  if (contentType.length > 255 || /[\r\n]/.test(contentType))
    throw new AmiError("M_INVALID_PARAM", "Invalid Content-Type");
  const filename = req.query.get("filename") || null;
  if (filename !== null && (Buffer.byteLength(filename) > 255 || /[\0\r\n]/.test(filename))) {
    throw new AmiError("M_INVALID_PARAM", "Invalid filename");
  }
  const mediaId = randomString(24);
  // Memory per upload is the store's working buffer and the chunks in flight, whatever the size; awaiting the
  // store is the backpressure (the socket is not read faster than chunks are hashed and written).
  const put = await hs.cas.put(req.stream!, { hold: mediaHold(mediaId) });
  // Content an admin quarantined stays quarantined when uploaded again (as Synapse since 1.128).
  const earlier = (await hs.store.media.listMedia({ sha256: put.sha256, quarantined: true, limit: 1 })).rows[0];
  const row: MediaRow = {
    mediaId,
    uploader: req.requester!.userId,
    contentType,
    filename,
    size: put.size,
    sha256: put.sha256,
    createdTs: Date.now(),
    quarantinedBy: earlier?.quarantinedBy ?? null,
  };
  // Bytes no row names would be held forever (the row's write can fail: a full disk): let GC have them.
  await hs.store.media.putMedia(row).catch(async (e) => {
    await hs.cas.release(put.id, mediaHold(mediaId)).catch(() => {});
    throw e;
  });
  return json({ content_uri: `mxc://${hs.serverName}/${mediaId}` });
}

interface Found {
  row: MediaRow;
  size: number;
  open(): Readable;
}

async function find(req: MatrixRequest): Promise<Found> {
  const { serverName, mediaId } = req.params;
  const notFound = () => new AmiError("M_NOT_FOUND", "Media not found");
  // No federation: media of other servers is never here.
  if (serverName !== req.hs.serverName || !MEDIA_ID_RE.test(mediaId)) throw notFound();
  const row = await req.hs.store.media.getMedia(mediaId);
  if (!row) throw notFound();
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
  const path = mediaPath(req.hs.mediaDir, mediaId);
  const st = await stat(path).catch(() => null);
  if (!st) throw notFound();
  return { row, size: st.size, open: () => createReadStream(path) };
}

function serve({ row, size, open }: Found, filename: string | null): Reply {
  return {
    status: 200,
    body: open(),
    headers: {
      "Content-Type": row.contentType,
      "Content-Length": String(size),
      "Content-Disposition": contentDisposition(row.contentType, filename),
      // Spec "Content repository" security: never let served media run script in our origin.
      "Content-Security-Policy":
        "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
      "Cross-Origin-Resource-Policy": "cross-origin",
      "X-Content-Type-Options": "nosniff",
      "Cache-Control": "private, max-age=86400",
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

async function thumbnail(req: MatrixRequest, lookup = find): Promise<Reply> {
  for (const k of ["width", "height"])
    if (req.query.get(k) === null) throw new AmiError("M_MISSING_PARAM", `'${k}': missing`);
  queryInt(req.query, "width", 0, 1, 10_000);
  queryInt(req.query, "height", 0, 1, 10_000);
  const method = req.query.get("method");
  if (method !== null && method !== "crop" && method !== "scale")
    throw new AmiError("M_INVALID_PARAM", "'method' must be crop or scale");
  const found = await lookup(req);
  if (!THUMBNAILABLE.has(baseType(found.row.contentType)))
    throw new AmiError("M_NOT_FOUND", "No thumbnail available for this media");
  // No image resizer is built in: the original image is the thumbnail (clients scale it), never a fake resize.
  return serve(found, found.row.filename);
}

const config = async (req: MatrixRequest): Promise<Reply> =>
  json({ "m.upload.size": req.hs.config.media.maxUploadBytes });

const legacy = (p: string) => [`/_matrix/media/v3/${p}`, `/_matrix/media/r0/${p}`];

export const routes: Route[] = [
  /** POST /_matrix/media/v3/upload */
  { method: "POST", paths: legacy("upload"), auth: "required", rateLimit: true, body: "stream", handler: upload },
  /** GET /_matrix/client/v1/media/config */
  { method: "GET", paths: ["/_matrix/client/v1/media/config"], auth: "required", handler: config },
  /** GET /_matrix/media/v3/config (legacy; the spec requires auth here too) */
  { method: "GET", paths: legacy("config"), auth: "required", handler: config },
  /** GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName?} */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName?}"],
    auth: "required",
    handler: download,
  },
  /** GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName?} (legacy, unauthenticated, frozen) */
  {
    method: "GET",
    paths: legacy("download/{serverName}/{mediaId}/{fileName?}"),
    auth: "none",
    handler: legacyDownload,
  },
  /** GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"],
    auth: "required",
    handler: (req) => thumbnail(req),
  },
  /** GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (legacy, unauthenticated, frozen) */
  {
    method: "GET",
    paths: legacy("thumbnail/{serverName}/{mediaId}"),
    auth: "none",
    handler: (req) => thumbnail(req, findFrozen),
  },
];
