/**
 * Pushers (spec "Push Notifications", POST /pushers/set): http pushers only; email pushers need an SMTP sender
 * this server does not have. A pusher belongs to the device whose access token set it, and goes with it.
 */
import { AmiError } from "../../core/errors.ts";
import { field, isJsonObject, type JsonObject } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import type { PusherRow } from "../store/types.ts";
import type { Requester } from "./requester.ts";

/** The pushers/set body, checked by the handler. */
export interface SetPusherInput {
  kind: string | null;
  appId: string;
  pushkey: string;
  appDisplayName?: string;
  deviceDisplayName?: string;
  profileTag?: string;
  lang?: string;
  data?: JsonObject;
  append: boolean;
}

const NOTIFY_PATH = "/_matrix/push/v1/notify";

export async function setPusher(hs: Homeserver, r: Requester, input: SetPusherInput): Promise<void> {
  if (input.kind === null) {
    await hs.store.pushers.deletePusher(r.userId, input.appId, input.pushkey);
    hs.push.forgetPusher(r.userId, input.appId, input.pushkey);
    return;
  }
  if (input.kind === "email")
    throw new AmiError("M_INVALID_PARAM", "Email pushers are not supported by this server (it sends no email)");
  if (input.kind !== "http") throw new AmiError("M_INVALID_PARAM", `Unknown pusher kind '${input.kind}'`);
  const missing = (["appDisplayName", "deviceDisplayName", "lang", "data"] as const).filter(
    (k) => input[k] === undefined,
  );
  if (missing.length)
    throw new AmiError(
      "M_MISSING_PARAM",
      `Missing parameters: ${missing.map((k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)).join(", ")}`,
    );
  const data = input.data as JsonObject;
  checkUrl(field(data, "url"));
  const format = field(data, "format");
  if (format !== undefined && format !== "event_id_only")
    throw new AmiError("M_INVALID_PARAM", "'data.format': the only format is 'event_id_only'");
  const row: PusherRow = {
    userId: r.userId,
    // A token without a device row (none today, but the foreign key would refuse it) sets a pusher of no device.
    deviceId: r.deviceId && (await hs.store.accounts.getDevice(r.userId, r.deviceId)) ? r.deviceId : null,
    kind: input.kind,
    appId: input.appId,
    pushkey: input.pushkey,
    appDisplayName: input.appDisplayName as string,
    deviceDisplayName: input.deviceDisplayName as string,
    profileTag: input.profileTag ?? null,
    lang: input.lang as string,
    data,
    pushkeyTs: Date.now(),
  };
  await hs.store.pushers.setPusher(row, input.append);
}

/** data.url: an absolute http(s) URL whose path is the Push Gateway API's notify endpoint. */
function checkUrl(url: unknown): void {
  if (url === undefined) throw new AmiError("M_MISSING_PARAM", "'data.url' is required for http pushers");
  let u: URL | null = null;
  try {
    u = typeof url === "string" ? new URL(url) : null;
  } catch {
    u = null;
  }
  if (!u || (u.protocol !== "http:" && u.protocol !== "https:") || u.pathname !== NOTIFY_PATH)
    throw new AmiError("M_INVALID_PARAM", `'data.url' must be an http(s) URL with the path ${NOTIFY_PATH}`);
}

/** GET /pushers: the user's pushers in the spec's shape. */
export async function listPushers(hs: Homeserver, userId: string): Promise<JsonObject[]> {
  return (await hs.store.pushers.getPushers(userId)).map((p) => ({
    pushkey: p.pushkey,
    kind: p.kind,
    app_id: p.appId,
    app_display_name: p.appDisplayName,
    device_display_name: p.deviceDisplayName,
    ...(p.profileTag !== null ? { profile_tag: p.profileTag } : {}),
    lang: p.lang,
    data: isJsonObject(p.data) ? p.data : {},
  }));
}
