/**
 * Uploads to the content repository (spec "Content repository"): POST /_matrix/media/v3/upload, and the asynchronous
 * pair — POST /_matrix/media/v1/create hands out an mxc:// URI, PUT /_matrix/media/v3/upload/{serverName}/{mediaId}
 * gives it its bytes (only its creator, once, before it expires; a download waiting for it is woken, on whichever
 * worker it waits: media.ts, service/media.ts).
 * Bytes live in the content-addressed store (hs.cas, src/cas/): an upload is streamed into it and committed (held
 * as "matrix.media:<mediaId>") before its row is written, so a recorded media ID always has its complete bytes, and
 * the same file uploaded twice (by anyone) is stored once. The row's sha256 is the content address.
 */
import { AmiError } from "../../core/errors.ts";
import { randomString } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { json, type MatrixRequest, type Reply, type Route } from "../http/types.ts";
import { mediaHold, releaseLostPut } from "../service/media.ts";
import type { MediaRow } from "../store/types.ts";
import { legacy, MEDIA_ID_RE } from "./media.ts";

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
export async function commitMedia(
  hs: Homeserver,
  source: AsyncIterable<Buffer> | Buffer,
  meta: Pick<MediaRow, "mediaId" | "uploader" | "contentType" | "filename">,
  write: (row: MediaRow) => Promise<void>,
): Promise<void> {
  const put = await hs.cas.put(source, { hold: mediaHold(meta.mediaId) });
  // Content an admin quarantined stays quarantined when uploaded again (as Synapse since 1.128).
  const earlier = (await hs.store.media.listMedia({ sha256: put.sha256, quarantined: true, limit: 1 })).rows[0];
  const row: MediaRow = {
    ...meta,
    size: put.size,
    sha256: put.sha256,
    createdTs: Date.now(),
    quarantinedBy: earlier?.quarantinedBy ?? null,
  };
  // Bytes no row names would be held forever (the row's write can fail: a full disk): let GC have them — unless
  // the same bytes were uploaded to this ID by a request that won (on another worker: M_CANNOT_OVERWRITE_MEDIA).
  await write(row).catch(async (e) => {
    await releaseLostPut(hs, meta.mediaId, put);
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

export const mxc = (hs: Homeserver, mediaId: string) => `mxc://${hs.serverName}/${mediaId}`;

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
];
