/** Spec section "Server-side key backups" (key_backup.yaml): backup versions and the keys in them. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import type { JsonObject } from "../events/types.ts";
import { json, type MatrixRequest, type Reply, type Route } from "../http/types.ts";
import type { BackupKeyRow, BackupVersionRow, BackupWriteResult } from "../store/keys-types.ts";
import { parseBody } from "../validate.ts";

const MAX_KEYS = 10_000;
const versionBody = z.object({
  algorithm: z.string().min(1).max(255),
  auth_data: z.record(z.string(), z.unknown()),
  version: z.string().optional(),
});
const keyData = z.object({
  first_message_index: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  forwarded_count: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  is_verified: z.boolean(),
  session_data: z.record(z.string(), z.unknown()),
});
const roomBody = z.object({ sessions: z.record(z.string().min(1).max(255), keyData) });
const allBody = z.object({ rooms: z.record(z.string().min(1).max(255), roomBody) });

const notFound = () => new AmiError("M_NOT_FOUND", "Unknown backup version");

function versionJson(v: BackupVersionRow): Record<string, unknown> {
  return { algorithm: v.algorithm, auth_data: v.authData, count: v.count, etag: v.etag, version: v.version };
}

function versionParam(req: MatrixRequest): string {
  const v = req.query.get("version");
  if (!v) throw new AmiError("M_MISSING_PARAM", "'version' is required");
  return v;
}

/** A key write's answer: etag and count, or the spec's errors (403 carries the current version). */
function writeReply(r: BackupWriteResult): Reply {
  if (r.ok) return json({ etag: r.etag, count: r.count });
  if (r.reason === "not_found") throw notFound();
  throw new AmiError(
    "M_WRONG_ROOM_KEYS_VERSION",
    "Wrong backup version.",
    r.current ? { current_version: r.current } : {},
  );
}

function sessionsJson(rows: BackupKeyRow[]): JsonObject {
  const out: JsonObject = {};
  for (const k of rows) out[k.sessionId] = k.data;
  return out;
}

function roomsJson(rows: BackupKeyRow[]): Record<string, { sessions: JsonObject }> {
  const rooms: Record<string, { sessions: JsonObject }> = {};
  for (const k of rows) {
    rooms[k.roomId] ??= { sessions: {} };
    rooms[k.roomId].sessions[k.sessionId] = k.data;
  }
  return rooms;
}

/** The backup must exist for reads (404 otherwise, like Synapse). */
async function mustExist(req: MatrixRequest, version: string): Promise<void> {
  if (!(await req.hs.store.keyBackup.getBackupVersion(req.requester!.userId, version))) throw notFound();
}

function put(keys: BackupKeyRow[]): void {
  if (keys.length > MAX_KEYS) throw new AmiError("M_TOO_LARGE", `At most ${MAX_KEYS} keys per request`);
}

const VERSION = "/_matrix/client/v3/room_keys/version";
const KEYS = "/_matrix/client/v3/room_keys/keys";

export const routes: Route[] = [
  /** POST /_matrix/client/v3/room_keys/version */
  {
    method: "POST",
    paths: [VERSION],
    auth: "required",
    async handler(req) {
      const b = parseBody(versionBody, req.body);
      return json({
        version: await req.hs.store.keyBackup.createBackupVersion(req.requester!.userId, b.algorithm, b.auth_data),
      });
    },
  },
  /** GET /_matrix/client/v3/room_keys/version and GET /_matrix/client/v3/room_keys/version/{version} */
  {
    method: "GET",
    paths: [VERSION, `${VERSION}/{version}`],
    auth: "required",
    async handler(req) {
      const v = await req.hs.store.keyBackup.getBackupVersion(req.requester!.userId, req.params.version ?? null);
      if (!v)
        throw new AmiError("M_NOT_FOUND", req.params.version ? "Unknown backup version" : "No current backup version");
      return json(versionJson(v));
    },
  },
  /** PUT /_matrix/client/v3/room_keys/version/{version} */
  {
    method: "PUT",
    paths: [`${VERSION}/{version}`],
    auth: "required",
    async handler(req) {
      const b = parseBody(versionBody, req.body);
      const userId = req.requester!.userId;
      const { version } = req.params;
      if (b.version !== undefined && b.version !== version)
        throw new AmiError("M_INVALID_PARAM", "'version' does not match the path");
      const v = await req.hs.store.keyBackup.getBackupVersion(userId, version);
      if (!v) throw notFound();
      if (v.algorithm !== b.algorithm) throw new AmiError("M_INVALID_PARAM", "Algorithm does not match");
      if (!(await req.hs.store.keyBackup.updateBackupVersion(userId, version, b.auth_data))) throw notFound();
      return json({});
    },
  },
  /** DELETE /_matrix/client/v3/room_keys/version/{version} */
  {
    method: "DELETE",
    paths: [`${VERSION}/{version}`],
    auth: "required",
    async handler(req) {
      await req.hs.store.keyBackup.deleteBackupVersion(req.requester!.userId, req.params.version);
      // Deleting a version that was deleted before succeeds (spec); one that never existed is 404.
      return json({});
    },
  },
  /** PUT /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]] */
  {
    method: "PUT",
    paths: [KEYS, `${KEYS}/{roomId}`, `${KEYS}/{roomId}/{sessionId}`],
    auth: "required",
    async handler(req) {
      const version = versionParam(req);
      const { roomId, sessionId } = req.params;
      let keys: BackupKeyRow[];
      if (sessionId !== undefined) keys = [{ roomId, sessionId, data: parseBody(keyData, req.body) }];
      else if (roomId !== undefined)
        keys = Object.entries(parseBody(roomBody, req.body).sessions).map(([s, data]) => ({
          roomId,
          sessionId: s,
          data,
        }));
      else
        keys = Object.entries(parseBody(allBody, req.body).rooms).flatMap(([r, room]) =>
          Object.entries(room.sessions).map(([s, data]) => ({ roomId: r, sessionId: s, data })),
        );
      put(keys);
      return writeReply(await req.hs.store.keyBackup.putBackupKeys(req.requester!.userId, version, keys));
    },
  },
  /** GET /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]] */
  {
    method: "GET",
    paths: [KEYS, `${KEYS}/{roomId}`, `${KEYS}/{roomId}/{sessionId}`],
    auth: "required",
    async handler(req) {
      const version = versionParam(req);
      const { roomId, sessionId } = req.params;
      await mustExist(req, version);
      const rows = await req.hs.store.keyBackup.getBackupKeys(req.requester!.userId, version, roomId, sessionId);
      if (sessionId !== undefined) {
        if (!rows[0]) throw new AmiError("M_NOT_FOUND", "No backup found for this session");
        return json(rows[0].data);
      }
      if (roomId !== undefined) return json({ sessions: sessionsJson(rows) });
      return json({ rooms: roomsJson(rows) });
    },
  },
  /** DELETE /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]] */
  {
    method: "DELETE",
    paths: [KEYS, `${KEYS}/{roomId}`, `${KEYS}/{roomId}/{sessionId}`],
    auth: "required",
    async handler(req) {
      const version = versionParam(req);
      const { roomId, sessionId } = req.params;
      return writeReply(
        await req.hs.store.keyBackup.deleteBackupKeys(req.requester!.userId, version, roomId, sessionId),
      );
    },
  },
];
