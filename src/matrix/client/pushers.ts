/** Spec section "Push Notifications": pushers (pusher.yaml) and the notifications list (notifications.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";
import { listNotifications } from "../service/notifications.ts";
import { listPushers, setPusher } from "../service/pushers.ts";
import { parseBody, queryInt } from "../validate.ts";

const setBody = z.object({
  kind: z.string().nullable(),
  app_id: z.string(),
  pushkey: z.string(),
  app_display_name: z.string().optional(),
  device_display_name: z.string().optional(),
  profile_tag: z.string().optional(),
  lang: z.string().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  append: z.boolean().optional(),
});

export const routes: Route[] = [
  /** GET /_matrix/client/v3/pushers */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/pushers"],
    auth: "required",
    async handler(req) {
      return json({ pushers: await listPushers(req.hs, req.requester!.userId) });
    },
  },
  /** POST /_matrix/client/v3/pushers/set */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/pushers/set"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const b = parseBody(setBody, req.body);
      // Spec limits: app_id at most 64 characters, pushkey at most 512 bytes.
      if (b.app_id === "" || b.app_id.length > 64)
        throw new AmiError("M_INVALID_PARAM", "'app_id' must be 1 to 64 characters");
      if (b.pushkey === "" || Buffer.byteLength(b.pushkey) > 512)
        throw new AmiError("M_INVALID_PARAM", "'pushkey' must be 1 to 512 bytes");
      await setPusher(req.hs, req.requester!, {
        kind: b.kind,
        appId: b.app_id,
        pushkey: b.pushkey,
        appDisplayName: b.app_display_name,
        deviceDisplayName: b.device_display_name,
        profileTag: b.profile_tag,
        lang: b.lang,
        data: b.data,
        append: b.append ?? false,
      });
      return json({});
    },
  },
  /** GET /_matrix/client/v3/notifications */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/notifications"],
    auth: "required",
    async handler(req) {
      const only = req.query.get("only");
      const from = req.query.get("from");
      if (from !== null && from !== "" && !/^\d{1,15}$/.test(from))
        throw new AmiError("M_INVALID_PARAM", "'from' is not a token this server gave out");
      return json(
        await listNotifications(req.hs, req.requester!, {
          from: from ? Number(from) : undefined,
          limit: queryInt(req.query, "limit", 50, 1, 1000),
          onlyHighlight: only === "highlight",
        }),
      );
    },
  },
];
