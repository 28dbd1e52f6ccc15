/** `ami-streams matrix media list|quarantine|delete|purge` (MCP: matrix_media_*): the media admin API. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp, type OpContext } from "../../core/ops.ts";
import { asService, fullUserId, resolveRoom } from "./client.ts";

const enc = encodeURIComponent;
const A1 = "/_synapse/admin/v1";

/** `mxc://server/id` or a bare media ID (of this server) -> [server, id]. */
function mediaRef(ctx: OpContext, ref: string): [string, string] {
  const m = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(ref);
  if (m) return [m[1], m[2]];
  if (/^[A-Za-z0-9_-]+$/.test(ref)) return [ctx.config.matrix.serverName, ref];
  throw new AmiError("M_INVALID_PARAM", `not a media reference: ${ref} (mxc://server/id or a media ID)`);
}

const mediaItem = z.object({
  mediaId: z.string(),
  type: z.string(),
  size: z.number(),
  filename: z.string().nullable(),
  createdTs: z.number(),
  quarantinedBy: z.string().nullable(),
});

export const mediaList = defineOp({
  name: "matrix.media.list",
  summary: "List a user's uploads (newest first), or the media a room's events name",
  input: z.object({
    user: z.string().optional().describe("uploader (localpart or user ID)"),
    room: z.string().optional().describe("room ID or alias"),
    limit: z.number().int().min(1).max(1000).default(100),
  }),
  output: z.object({ media: z.array(mediaItem), uris: z.array(z.string()), total: z.number() }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) =>
    [
      ...o.media.map(
        (m) =>
          `${m.mediaId}  ${m.type}  ${m.size} B  ${m.filename ?? "-"}  ${new Date(m.createdTs).toISOString()}${m.quarantinedBy ? "  QUARANTINED" : ""}`,
      ),
      ...o.uris,
      `${o.total} item(s)`,
    ].join("\n"),
  async run(i, ctx) {
    if (!!i.user === !!i.room) throw new AmiError("M_INVALID_PARAM", "give exactly one of user or room");
    if (i.room) {
      const roomId = await resolveRoom(ctx, i.room);
      const r = await asService<{ local: string[]; remote: string[] }>(ctx, "GET", `${A1}/room/${enc(roomId)}/media`);
      const uris = [...r.local, ...r.remote];
      return { media: [], uris, total: uris.length };
    }
    const userId = fullUserId(ctx, i.user!);
    const r = await asService(ctx, "GET", `${A1}/users/${enc(userId)}/media?limit=${i.limit}`);
    return {
      media: r.media.map(
        (m: {
          media_id: string;
          media_type: string;
          media_length: number;
          upload_name: string | null;
          created_ts: number;
          quarantined_by: string | null;
        }) => ({
          mediaId: m.media_id,
          type: m.media_type,
          size: m.media_length,
          filename: m.upload_name,
          createdTs: m.created_ts,
          quarantinedBy: m.quarantined_by,
        }),
      ),
      uris: [],
      total: r.total,
    };
  },
});

export const mediaQuarantine = defineOp({
  name: "matrix.media.quarantine",
  summary: "Quarantine media (served to no one, kept as evidence): one item, a room's, or a user's; or lift it",
  input: z.object({
    media: z.string().optional().describe("mxc://server/id or a media ID"),
    room: z.string().optional().describe("every media item a room's events name"),
    user: z.string().optional().describe("every upload of a user"),
    lift: z.boolean().default(false).describe("release one item from quarantine"),
  }),
  output: z.object({ quarantined: z.number(), lifted: z.boolean() }),
  annotations: { readOnly: false, destructive: true, idempotent: true },
  positional: ["media"],
  human: (o) => (o.lifted ? "released from quarantine" : `${o.quarantined} media item(s) quarantined`),
  async run(i, ctx) {
    if ([i.media, i.room, i.user].filter(Boolean).length !== 1)
      throw new AmiError("M_INVALID_PARAM", "give exactly one of media, room or user");
    if (i.lift && !i.media) throw new AmiError("M_INVALID_PARAM", "lift works on one media item");
    if (i.media) {
      const [server, id] = mediaRef(ctx, i.media);
      await asService(
        ctx,
        "POST",
        `${A1}/media/${i.lift ? "unquarantine" : "quarantine"}/${enc(server)}/${enc(id)}`,
        {},
      );
      return { quarantined: i.lift ? 0 : 1, lifted: i.lift };
    }
    const path = i.room
      ? `${A1}/room/${enc(await resolveRoom(ctx, i.room))}/media/quarantine`
      : `${A1}/user/${enc(fullUserId(ctx, i.user!))}/media/quarantine`;
    const r = await asService<{ num_quarantined: number }>(ctx, "POST", path, {});
    return { quarantined: r.num_quarantined, lifted: false };
  },
});

const deleted = z.object({ deleted: z.array(z.string()), total: z.number() });
const humanDeleted = (o: z.infer<typeof deleted>) =>
  `${o.total} media item(s) deleted${o.total ? `: ${o.deleted.join(", ")}` : ""}`;

export const mediaDelete = defineOp({
  name: "matrix.media.delete",
  summary: "Delete a media item, or a user's uploads (newest first, up to limit)",
  input: z.object({
    media: z.string().optional().describe("mxc://server/id or a media ID"),
    user: z.string().optional().describe("delete this user's uploads"),
    limit: z.number().int().min(1).max(10000).default(100),
  }),
  output: deleted,
  annotations: { readOnly: false, destructive: true, idempotent: true },
  positional: ["media"],
  human: humanDeleted,
  async run(i, ctx) {
    if (!!i.media === !!i.user) throw new AmiError("M_INVALID_PARAM", "give exactly one of media or user");
    const r = i.media
      ? await asService(ctx, "DELETE", `${A1}/media/${mediaRef(ctx, i.media).map(enc).join("/")}`)
      : await asService(ctx, "DELETE", `${A1}/users/${enc(fullUserId(ctx, i.user!))}/media?limit=${i.limit}`);
    return { deleted: r.deleted_media, total: r.total };
  },
});

export const mediaPurge = defineOp({
  name: "matrix.media.purge",
  summary: "Delete every upload older than a number of days (optionally only those larger than a size)",
  input: z.object({
    olderThanDays: z.number().min(0).describe("uploaded more than this many days ago"),
    largerThan: z.number().int().min(0).default(0).describe("only files larger than this many bytes"),
  }),
  output: deleted,
  annotations: { readOnly: false, destructive: true, idempotent: true },
  positional: ["olderThanDays"],
  human: humanDeleted,
  async run(i, ctx) {
    const before = Math.floor(Date.now() - i.olderThanDays * 86_400_000);
    const r = await asService(ctx, "POST", `${A1}/media/delete?before_ts=${before}&size_gt=${i.largerThan}`, {});
    return { deleted: r.deleted_media, total: r.total };
  },
});
