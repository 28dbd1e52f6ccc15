/** Rooms shared with another user (spec mutual_rooms.yaml, v1.18+). */
import { AmiError } from "../../core/errors.ts";
import { parseUserId } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { json, type Route } from "../http/types.ts";

/** Room IDs per page; `next_batch` is the last room ID of a page (rooms are in room ID order). */
export const MUTUAL_ROOMS_PAGE = 50;

async function joinedRoomIds(hs: Homeserver, userId: string): Promise<string[]> {
  return (await hs.store.events.getRoomsForUser(userId)).filter((m) => m.membership === "join").map((m) => m.roomId);
}

export const routes: Route[] = [
  /** GET /_matrix/client/v1/mutual_rooms */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/mutual_rooms"],
    auth: "required",
    async handler(req) {
      const me = req.requester!.userId;
      const other = req.query.get("user_id");
      if (!other) throw new AmiError("M_MISSING_PARAM", "Missing query parameter 'user_id'");
      if (!parseUserId(other)) throw new AmiError("M_INVALID_PARAM", "The user ID provided was invalid");
      if (other === me) throw new AmiError("M_INVALID_PARAM", "The user ID is your own");
      const from = req.query.get("from");
      if (from !== null && !from.startsWith("!"))
        throw new AmiError("M_INVALID_PARAM", "The 'from' token is not one this server gave");
      const theirs = new Set(await joinedRoomIds(req.hs, other));
      const shared = (await joinedRoomIds(req.hs, me)).filter((r) => theirs.has(r)).sort();
      const rest = from === null ? shared : shared.filter((r) => r > from);
      const joined = rest.slice(0, MUTUAL_ROOMS_PAGE);
      const out: Record<string, unknown> = { joined, count: shared.length };
      if (rest.length > joined.length) out.next_batch = joined[joined.length - 1];
      return json(out);
    },
  },
];
