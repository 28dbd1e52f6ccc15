/**
 * The admin media operations: deleting a local media item (its row, then its hold on the bytes in the
 * content-addressed store — the bytes go at the store's next GC unless another upload of the same content still
 * holds them — or the file of an upload from before the store), and the media a room's events name.
 */
import { unlink } from "node:fs/promises";
import { AmiError } from "../../core/errors.ts";
import type { Homeserver } from "../hs.ts";
import type { MediaRow } from "../store/types.ts";
import { mediaHold, mediaPath } from "./media.ts";

/** Delete one media item; false when its row was already gone. */
export async function deleteMedia(hs: Homeserver, row: MediaRow): Promise<boolean> {
  if (!(await hs.store.media.deleteMedia(row.mediaId))) return false;
  const id = await hs.cas.resolve(row.sha256).catch((e) => {
    if (e instanceof AmiError && e.code === "M_NOT_FOUND") return undefined;
    throw e;
  });
  if (id) await hs.cas.release(id, mediaHold(row.mediaId));
  else await unlink(mediaPath(hs.mediaDir, row.mediaId)).catch(() => {});
  hs.log.info("media deleted", { mediaId: row.mediaId, uploader: row.uploader });
  return true;
}

/** Delete each row; resolves to the IDs actually deleted. */
export async function deleteMediaRows(hs: Homeserver, rows: MediaRow[]): Promise<string[]> {
  const out: string[] = [];
  for (const r of rows) if (await deleteMedia(hs, r)) out.push(r.mediaId);
  return out;
}

const MXC = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/;

/** The mxc URIs of an event's content that Synapse counts as a room's media: `url` and `info.thumbnail_url`. */
function mxcsOf(content: Record<string, unknown> | undefined): string[] {
  if (!content) return [];
  const info = content.info as Record<string, unknown> | undefined;
  return [content.url, info?.thumbnail_url].filter((u): u is string => typeof u === "string" && MXC.test(u));
}

/** Media named by a room's (unencrypted) events, split as Synapse: this server's and other servers'. */
export async function roomMedia(hs: Homeserver, roomId: string): Promise<{ local: string[]; remote: string[] }> {
  const local = new Set<string>();
  const remote = new Set<string>();
  let from = 0;
  for (;;) {
    const page = await hs.store.events.getRoomEvents({ roomId, dir: "f", from, limit: 500 });
    for (const e of page)
      for (const uri of mxcsOf(e.pdu.content as Record<string, unknown> | undefined))
        (MXC.exec(uri)![1] === hs.serverName ? local : remote).add(uri);
    if (page.length < 500) break;
    from = page[page.length - 1].stream;
  }
  return { local: [...local], remote: [...remote] };
}

/** The local media IDs of mxc URIs. */
export function localMediaIds(hs: Homeserver, uris: string[]): string[] {
  return uris
    .map((u) => MXC.exec(u))
    .filter((m) => m && m[1] === hs.serverName)
    .map((m) => m![2]);
}

/**
 * Local media in use as an image of a profile or room: users' avatars and rooms' current avatars. Synapse's purge
 * by date keeps these unless told otherwise (`keep_profiles`). One pass over every user and room.
 */
export async function profileMediaIds(hs: Homeserver): Promise<Set<string>> {
  const uris: string[] = [];
  for (let offset = 0; ; offset += 1000) {
    const { rows } = await hs.store.accounts.queryUsers({
      filter: { includeDeactivated: true },
      order: "name",
      dir: "f",
      offset,
      limit: 1000,
    });
    for (const u of rows) if (u.avatarUrl) uris.push(u.avatarUrl);
    if (rows.length < 1000) break;
  }
  let from: string | undefined;
  for (;;) {
    const rooms = await hs.store.rooms.listRooms({ from, limit: 500 });
    for (const r of rooms) {
      const url = (await hs.store.events.getCurrentStateEvent(r.roomId, "m.room.avatar", ""))?.pdu.content?.url;
      if (typeof url === "string") uris.push(url);
    }
    if (rooms.length < 500) break;
    from = rooms[rooms.length - 1].roomId;
  }
  return new Set(localMediaIds(hs, uris));
}
