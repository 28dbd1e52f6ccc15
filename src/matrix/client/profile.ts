/**
 * User profiles (spec: "Profiles", profile.yaml): displayname and avatar_url (on the account row, mirrored into
 * member events) and, since v1.16, any other field by key (`m.tz`, namespaced custom keys; any JSON value), all
 * through `/profile/{userId}/{keyName}`. The whole profile stays under 64 KiB.
 */
import { AmiError } from "../../core/errors.ts";
import type { EventContent } from "../events/types.ts";
import { remoteProfile } from "../federation/remote.ts";
import type { Homeserver } from "../hs.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import { parseLocalUserId } from "../service/registration.ts";
import type { UserRow } from "../store/types.ts";

async function profileOf(req: MatrixRequest, remote = true): Promise<UserRow> {
  const { local } = parseLocalUserId(req.hs, req.params.userId);
  if (!local && remote && req.hs.config.federation.enabled) return remoteUserRow(req);
  const user = local ? await req.hs.store.accounts.getUser(req.params.userId) : null;
  if (!user) throw new AmiError("M_NOT_FOUND", "Profile was not found");
  return user;
}

/** A remote user's profile (query/profile on their server, cached briefly) in the shape of a local row. */
async function remoteUserRow(req: MatrixRequest): Promise<UserRow> {
  const p = await remoteProfile(req.hs, req.params.userId);
  return { userId: req.params.userId, displayname: p.displayname ?? null, avatarUrl: p.avatar_url ?? null } as UserRow;
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

/** The spec's keyName pattern (the Common Namespaced Identifier Grammar for custom keys). */
const KEY_NAME = /^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$/;
const MAX_KEY_BYTES = 255;
/** "the total profile MUST be under 64 KiB" (as JSON). */
export const MAX_PROFILE_BYTES = 64 * 1024;

function keyNameOf(req: MatrixRequest): string {
  const key = req.params.keyName;
  if (Buffer.byteLength(key) > MAX_KEY_BYTES)
    throw new AmiError("M_KEY_TOO_LARGE", `Profile keys are at most ${MAX_KEY_BYTES} bytes`);
  if (!KEY_NAME.test(key))
    throw new AmiError("M_INVALID_PARAM", "The key must be displayname, avatar_url, m.tz or a namespaced identifier");
  return key;
}

/** The whole profile as GET /profile/{userId} answers it. */
async function fullProfile(req: MatrixRequest, u: UserRow): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = await req.hs.store.accounts.getProfileFields(u.userId);
  if (u.displayname) out.displayname = u.displayname;
  if (u.avatarUrl) out.avatar_url = u.avatarUrl;
  return out;
}

/** The value for `key` from a PUT body, checked: displayname and avatar_url as before (null or "" clears). */
function fieldValue(key: string, body: Record<string, unknown>): unknown {
  if (!(key in body)) throw new AmiError("M_MISSING_PARAM", `The body must contain the key '${key}'`);
  const v = body[key];
  const str = (max: number) => {
    if (v !== null && typeof v !== "string") throw new AmiError("M_BAD_JSON", `'${key}' must be a string`);
    if (typeof v === "string" && v.length > max) throw new AmiError("M_BAD_JSON", `'${key}' is too long`);
    return v || null;
  };
  if (key === "displayname") return str(256);
  if (key === "avatar_url") {
    const url = str(1024);
    if (url !== null && !url.startsWith("mxc://"))
      throw new AmiError("M_BAD_JSON", "'avatar_url' must be an mxc:// URI");
    return url;
  }
  if (key === "m.tz" && typeof v !== "string") throw new AmiError("M_BAD_JSON", "'m.tz' must be a string");
  return v;
}

/** Set (a value) or delete (undefined) one field, refusing a profile that would reach 64 KiB. */
async function setField(req: MatrixRequest, key: string, value: unknown): Promise<void> {
  mayEdit(req);
  const u = await profileOf(req, false);
  const profile = await fullProfile(req, u);
  if (value !== undefined) {
    const next = { ...profile, [key]: value };
    if (Buffer.byteLength(JSON.stringify(next)) >= MAX_PROFILE_BYTES)
      throw new AmiError("M_PROFILE_TOO_LARGE", "The profile would exceed 64 KiB");
  }
  if (key === "displayname" || key === "avatar_url") {
    const v = (value ?? null) as string | null;
    const patch = key === "displayname" ? { displayname: v } : { avatarUrl: v };
    if (v === (key === "displayname" ? u.displayname : u.avatarUrl)) return;
    await req.hs.store.accounts.updateUser(u.userId, patch);
    await propagate(req.hs, u.userId);
    return;
  }
  await req.hs.store.accounts.setProfileField(u.userId, key, value);
}

const FIELD = "/_matrix/client/v3/profile/{userId}/{keyName}";

export const routes: Route[] = [
  /** GET /_matrix/client/v3/profile/{userId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/profile/{userId}"],
    auth: "optional",
    handler: async (req) => json(await fullProfile(req, await profileOf(req))),
  },
  /** GET /_matrix/client/v3/profile/{userId}/{keyName} */
  {
    method: "GET",
    paths: [FIELD],
    auth: "optional",
    handler: async (req) => {
      const key = keyNameOf(req);
      const profile = await fullProfile(req, await profileOf(req));
      if (!(key in profile)) throw new AmiError("M_NOT_FOUND", `The profile has no field '${key}'`);
      return json({ [key]: profile[key] });
    },
  },
  /** PUT /_matrix/client/v3/profile/{userId}/{keyName} */
  {
    method: "PUT",
    paths: [FIELD],
    auth: "required",
    rateLimit: true,
    refuseSuspended: true,
    handler: async (req) => {
      const key = keyNameOf(req);
      await setField(req, key, fieldValue(key, req.body));
      return json({});
    },
  },
  /** DELETE /_matrix/client/v3/profile/{userId}/{keyName} */
  {
    method: "DELETE",
    paths: [FIELD],
    auth: "required",
    rateLimit: true,
    refuseSuspended: true,
    handler: async (req) => {
      await setField(req, keyNameOf(req), undefined);
      return json({});
    },
  },
];
