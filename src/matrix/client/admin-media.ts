/**
 * Synapse's media admin API (docs/admin_api/media_admin_api.md and the user media part of user_admin_api.md):
 * media of a room, one media item's info, quarantine (by ID, room or user; quarantined media answer 404 to
 * everyone) and its release, deletion (by ID, by age and size, of a user). Only local media exist here (no
 * federation), so `remote` lists stay empty of anything this server holds.
 */
import { AmiError } from "../../core/errors.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import { deleteMediaRows, localMediaIds, profileMediaIds, roomMedia } from "../service/media-admin.ts";
import { requireRoom, requireRoomId } from "../service/room-access.ts";
import type { MediaRow } from "../store/types.ts";
import { queryInt } from "../validate.ts";
import { adminRoute, boolQuery, enumQuery, existingLocalUser, nextToken, pageQuery } from "./admin-kit.ts";

/** Synapse's media object of a user's media listing. */
const mediaJson = (m: MediaRow) => ({
  media_id: m.mediaId,
  media_type: m.contentType,
  media_length: m.size,
  upload_name: m.filename,
  created_ts: m.createdTs,
  last_access_ts: null,
  quarantined_by: m.quarantinedBy ?? null,
  safe_from_quarantine: false,
});

/** The path's local media row; 400 for another server's media (none is ever held here), 404 when unknown. */
async function localMedia(req: MatrixRequest): Promise<MediaRow> {
  if (req.params.serverName !== req.hs.serverName) throw new AmiError("M_INVALID_PARAM", "Can only act on local media");
  const row = await req.hs.store.media.getMedia(req.params.mediaId);
  if (!row) throw new AmiError("M_NOT_FOUND", "Unknown media");
  return row;
}

/** A user's media page as the listing and deletion share it (Synapse: newest first by default). */
async function userMediaPage(req: MatrixRequest) {
  const user = await existingLocalUser(req);
  const { offset, limit } = pageQuery(req.query);
  enumQuery(req.query, "order_by", ["created_ts"] as const, "created_ts");
  const dir =
    req.query.get("order_by") || req.query.get("dir") ? enumQuery(req.query, "dir", ["f", "b"] as const, "f") : "b";
  return { offset, ...(await req.hs.store.media.listMedia({ uploader: user.userId, offset, limit, dir })) };
}

/**
 * Quarantine (or release) media and, as Synapse since 1.128, every other upload of the same content: here
 * identical uploads share their bytes, so quarantining one copy must not leave the others served.
 */
async function quarantine(req: MatrixRequest, ids: string[], on: boolean) {
  const { media } = req.hs.store;
  const rows = ids.length ? (await media.listMedia({ mediaIds: ids })).rows : [];
  const same = new Set(ids);
  for (const sha256 of new Set(rows.map((r) => r.sha256)))
    for (const r of (await media.listMedia({ sha256 })).rows) same.add(r.mediaId);
  const n = same.size ? await media.setQuarantined([...same], on ? req.requester!.userId : null) : 0;
  req.hs.log.info(on ? "media quarantined" : "media released from quarantine", { n, by: req.requester!.userId });
  return n;
}

const quarantineRoom = async (req: MatrixRequest) => {
  const roomId = requireRoomId(req.params.roomId);
  await requireRoom(req.hs, roomId);
  const ids = localMediaIds(req.hs, (await roomMedia(req.hs, roomId)).local);
  return json({ num_quarantined: await quarantine(req, ids, true) });
};

const deleteOld = async (req: MatrixRequest) => {
  if (req.params.serverName !== undefined && req.params.serverName !== req.hs.serverName)
    throw new AmiError("M_INVALID_PARAM", "Can only delete local media");
  if (!req.query.get("before_ts")) throw new AmiError("M_MISSING_PARAM", "Missing integer query parameter 'before_ts'");
  const beforeTs = queryInt(req.query, "before_ts", 0, 0);
  const sizeGt = queryInt(req.query, "size_gt", 0, 0);
  const keepProfiles = boolQuery(req.query, "keep_profiles", true);
  const { rows } = await req.hs.store.media.listMedia({ beforeTs, sizeGt });
  const keep = keepProfiles ? await profileMediaIds(req.hs) : new Set<string>();
  const deleted = await deleteMediaRows(
    req.hs,
    rows.filter((r) => !keep.has(r.mediaId)),
  );
  return json({ deleted_media: deleted, total: deleted.length });
};

export const routes: Route[] = [
  /** GET /_synapse/admin/v1/room/{roomId}/media */
  adminRoute("GET", ["/_synapse/admin/v1/room/{roomId}/media"], async (req) => {
    const roomId = requireRoomId(req.params.roomId);
    await requireRoom(req.hs, roomId);
    return json(await roomMedia(req.hs, roomId));
  }),
  /** POST /_synapse/admin/v1/room/{roomId}/media/quarantine (and the legacy /quarantine_media/{roomId}) */
  adminRoute(
    "POST",
    ["/_synapse/admin/v1/room/{roomId}/media/quarantine", "/_synapse/admin/v1/quarantine_media/{roomId}"],
    quarantineRoom,
  ),
  /** POST /_synapse/admin/v1/user/{userId}/media/quarantine */
  adminRoute("POST", ["/_synapse/admin/v1/user/{userId}/media/quarantine"], async (req) => {
    const user = await existingLocalUser(req);
    const { rows } = await req.hs.store.media.listMedia({ uploader: user.userId });
    return json({
      num_quarantined: await quarantine(
        req,
        rows.map((r) => r.mediaId),
        true,
      ),
    });
  }),
  /** POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId} */
  adminRoute("POST", ["/_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}"], async (req) => {
    await quarantine(req, [(await localMedia(req)).mediaId], true);
    return json({});
  }),
  /** POST /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId} */
  adminRoute("POST", ["/_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}"], async (req) => {
    await quarantine(req, [(await localMedia(req)).mediaId], false);
    return json({});
  }),
  /** GET /_synapse/admin/v1/media/{serverName}/{mediaId} */
  adminRoute("GET", ["/_synapse/admin/v1/media/{serverName}/{mediaId}"], async (req) => {
    const m = await localMedia(req);
    return json({
      media_info: {
        media_origin: req.hs.serverName,
        user_id: m.uploader,
        media_id: m.mediaId,
        media_type: m.contentType,
        media_length: m.size,
        upload_name: m.filename,
        created_ts: m.createdTs,
        filesystem_id: m.mediaId,
        url_cache: null,
        last_access_ts: null,
        quarantined_by: m.quarantinedBy ?? null,
        authenticated: true,
        safe_from_quarantine: false,
        sha256: m.sha256,
      },
    });
  }),
  /** DELETE /_synapse/admin/v1/media/{serverName}/{mediaId} */
  adminRoute("DELETE", ["/_synapse/admin/v1/media/{serverName}/{mediaId}"], async (req) => {
    const deleted = await deleteMediaRows(req.hs, [await localMedia(req)]);
    return json({ deleted_media: deleted, total: deleted.length });
  }),
  /** POST /_synapse/admin/v1/media/delete?before_ts=&size_gt= (and the deprecated /media/{serverName}/delete) */
  adminRoute("POST", ["/_synapse/admin/v1/media/delete", "/_synapse/admin/v1/media/{serverName}/delete"], deleteOld),
  /** GET /_synapse/admin/v1/users/{userId}/media */
  adminRoute("GET", ["/_synapse/admin/v1/users/{userId}/media"], async (req) => {
    const { offset, rows, total } = await userMediaPage(req);
    return json({ media: rows.map(mediaJson), total, ...nextToken(offset, rows.length, total) });
  }),
  /** DELETE /_synapse/admin/v1/users/{userId}/media (one page: `limit`, default 100) */
  adminRoute("DELETE", ["/_synapse/admin/v1/users/{userId}/media"], async (req) => {
    const { rows } = await userMediaPage(req);
    const deleted = await deleteMediaRows(req.hs, rows);
    return json({ deleted_media: deleted, total: deleted.length });
  }),
];
