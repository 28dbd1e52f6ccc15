/** Server discovery and capabilities (spec: "Server Discovery", "Capabilities negotiation"). */
import { SUPPORTED_ROOM_VERSIONS } from "../events/room-versions.ts";
import { json, type Route } from "../http/types.ts";

/**
 * The spec versions whose client-server API is served (test/e2e/matrix-spec-routes.test.ts asks every v1.19 route).
 * v1.12-v1.15 add thumbnail Content-Disposition, `via` on join/knock, room and user reports, M_USER_SUSPENDED and the
 * requestToken error codes, room summaries and (optional) OAuth discovery, all served. Not v1.16: room version 12
 * (creators' power, room IDs from the create event) is not implemented, and `/versions` must not promise it.
 */
const VERSIONS = [
  "r0.6.1",
  "v1.1",
  "v1.2",
  "v1.3",
  "v1.4",
  "v1.5",
  "v1.6",
  "v1.7",
  "v1.8",
  "v1.9",
  "v1.10",
  "v1.11",
  "v1.12",
  "v1.13",
  "v1.14",
  "v1.15",
];

export const routes: Route[] = [
  /** GET /_matrix/client/versions */
  {
    method: "GET",
    paths: ["/_matrix/client/versions"],
    auth: "none",
    handler: async () =>
      json({
        versions: VERSIONS,
        // Only features that are really served: authenticated media (MSC3916, stable in v1.11) and room summaries
        // (MSC3266, stable in v1.15: clients that see the flag use the stable route, which is the one served).
        unstable_features: { "org.matrix.msc3916.stable_media": true, "org.matrix.msc3266": true },
      }),
  },
  /** GET /.well-known/matrix/client */
  {
    method: "GET",
    paths: ["/.well-known/matrix/client"],
    auth: "none",
    handler: async (req) => json({ "m.homeserver": { base_url: req.hs.publicBaseUrl } }),
  },
  /** GET /_matrix/client/v3/capabilities */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/capabilities"],
    auth: "required",
    handler: async (req) => {
      const available: Record<string, string> = {};
      for (const v of SUPPORTED_ROOM_VERSIONS) available[v] = "stable";
      return json({
        capabilities: {
          "m.change_password": { enabled: true },
          "m.room_versions": { default: req.hs.config.defaultRoomVersion, available },
          "m.set_displayname": { enabled: true },
          "m.set_avatar_url": { enabled: true },
          "m.3pid_changes": { enabled: false },
          "m.get_login_token": { enabled: req.hs.config.auth.loginTokenEnabled },
          // Extended profile fields (v1.16): every key the spec's grammar allows may be set.
          "m.profile_fields": { enabled: true },
        },
      });
    },
  },
];
