/** User profiles (spec: "Profiles"): displayname and avatar_url. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import type { EventContent } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import { parseLocalUserId } from "../service/registration.ts";
import type { UserRow } from "../store/types.ts";
import { parseBody } from "../validate.ts";

async function profileOf(req: MatrixRequest): Promise<UserRow> {
  const { local } = parseLocalUserId(req.hs, req.params.userId);
  const user = local ? await req.hs.store.accounts.getUser(req.params.userId) : null;
  if (!user) throw new AmiError("M_NOT_FOUND", "Profile was not found");
  return user;
}

/**
 * A profile change shows in every joined room through a new m.room.member join event (spec: "Events on
 * change of profile information"). Best effort per room: one room refusing must not undo the change.
 */
async function propagate(hs: Homeserver, userId: string): Promise<void> {
  const user = await hs.store.accounts.getUser(userId);
  if (!user) return;
  for (const m of await hs.store.events.getRoomsForUser(userId)) {
    if (m.membership !== "join") continue;
    try {
      const current = await hs.store.events.getCurrentStateEvent(m.roomId, "m.room.member", userId);
      const content: EventContent = { ...(current?.pdu.content ?? {}), membership: "join" };
      delete content.displayname;
      delete content.avatar_url;
      delete content.reason;
      if (user.displayname) content.displayname = user.displayname;
      if (user.avatarUrl) content.avatar_url = user.avatarUrl;
      await hs.rooms.sendEvent({ roomId: m.roomId, sender: userId, type: "m.room.member", stateKey: userId, content });
    } catch (e) {
      hs.log.warn("profile: could not update member event", { userId, roomId: m.roomId, err: String(e) });
    }
  }
}

function mayEdit(req: MatrixRequest): void {
  const r = req.requester!;
  if (r.userId !== req.params.userId && !r.isAdmin)
    throw new AmiError("M_FORBIDDEN", "You may only change your own profile");
}

const displaynameBody = z.object({ displayname: z.string().max(256).nullable() });
const avatarBody = z.object({
  avatar_url: z
    .string()
    .max(1024)
    .refine((s) => s === "" || s.startsWith("mxc://"), "must be an mxc:// URI")
    .nullable(),
});

export const routes: Route[] = [
  /** GET /_matrix/client/v3/profile/{userId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/profile/{userId}"],
    auth: "optional",
    handler: async (req) => {
      const u = await profileOf(req);
      const out: Record<string, string> = {};
      if (u.displayname) out.displayname = u.displayname;
      if (u.avatarUrl) out.avatar_url = u.avatarUrl;
      return json(out);
    },
  },
  /** GET /_matrix/client/v3/profile/{userId}/displayname */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/profile/{userId}/displayname"],
    auth: "optional",
    handler: async (req) => {
      const u = await profileOf(req);
      return json(u.displayname ? { displayname: u.displayname } : {});
    },
  },
  /** GET /_matrix/client/v3/profile/{userId}/avatar_url */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/profile/{userId}/avatar_url"],
    auth: "optional",
    handler: async (req) => {
      const u = await profileOf(req);
      return json(u.avatarUrl ? { avatar_url: u.avatarUrl } : {});
    },
  },
  /** PUT /_matrix/client/v3/profile/{userId}/displayname */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/profile/{userId}/displayname"],
    auth: "required",
    rateLimit: true,
    handler: async (req) => {
      const b = parseBody(displaynameBody, req.body);
      mayEdit(req);
      const u = await profileOf(req);
      const value = b.displayname || null;
      if (value !== u.displayname) {
        await req.hs.store.accounts.updateUser(u.userId, { displayname: value });
        await propagate(req.hs, u.userId);
      }
      return json({});
    },
  },
  /** PUT /_matrix/client/v3/profile/{userId}/avatar_url */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/profile/{userId}/avatar_url"],
    auth: "required",
    rateLimit: true,
    handler: async (req) => {
      const b = parseBody(avatarBody, req.body);
      mayEdit(req);
      const u = await profileOf(req);
      const value = b.avatar_url || null;
      if (value !== u.avatarUrl) {
        await req.hs.store.accounts.updateUser(u.userId, { avatarUrl: value });
        await propagate(req.hs, u.userId);
      }
      return json({});
    },
  },
];
