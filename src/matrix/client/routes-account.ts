/** Accounts, auth, profiles, devices, media (uploads, downloads, thumbnails, URL previews), the Synapse admin API. */
import type { Route } from "../http/types.ts";
import { routes as account } from "./account.ts";
import { routes as admin } from "./admin.ts";
import { routes as adminMedia } from "./admin-media.ts";
import { routes as adminReports } from "./admin-reports.ts";
import { routes as adminRooms } from "./admin-rooms.ts";
import { routes as adminTokens } from "./admin-tokens.ts";
import { routes as adminUsers } from "./admin-users.ts";
import { routes as appservice } from "./appservice.ts";
import { routes as devices } from "./devices.ts";
import { routes as login } from "./login.ts";
import { routes as loginToken } from "./login-token.ts";
import { routes as logout } from "./logout.ts";
import { routes as media } from "./media.ts";
import { routes as mediaUpload } from "./media-upload.ts";
import { routes as openid } from "./openid.ts";
import { routes as profile } from "./profile.ts";
import { routes as refresh } from "./refresh.ts";
import { routes as register } from "./register.ts";
import { routes as sso } from "./sso.ts";
import { routes as threepid } from "./threepid.ts";
import { routes as urlPreview } from "./url-preview.ts";
import { routes as versions } from "./versions.ts";
import { routes as voip } from "./voip.ts";

export const accountRoutes: Route[] = [
  ...versions,
  ...login,
  ...loginToken,
  ...refresh,
  ...logout,
  ...register,
  ...account,
  ...threepid,
  ...openid,
  ...sso,
  ...appservice,
  ...devices,
  ...profile,
  ...media,
  ...mediaUpload,
  ...urlPreview,
  ...admin,
  ...adminTokens,
  ...adminUsers,
  ...adminRooms,
  ...adminMedia,
  ...adminReports,
  ...voip,
];
