/** Accounts, auth, profiles, devices, media and the Synapse admin API. */
import type { Route } from "../http/types.ts";
import { routes as account } from "./account.ts";
import { routes as admin } from "./admin.ts";
import { routes as adminMedia } from "./admin-media.ts";
import { routes as adminReports } from "./admin-reports.ts";
import { routes as adminRooms } from "./admin-rooms.ts";
import { routes as adminTokens } from "./admin-tokens.ts";
import { routes as adminUsers } from "./admin-users.ts";
import { routes as devices } from "./devices.ts";
import { routes as login } from "./login.ts";
import { routes as logout } from "./logout.ts";
import { routes as media } from "./media.ts";
import { routes as profile } from "./profile.ts";
import { routes as register } from "./register.ts";
import { routes as versions } from "./versions.ts";
import { routes as voip } from "./voip.ts";

export const accountRoutes: Route[] = [
  ...versions,
  ...login,
  ...logout,
  ...register,
  ...account,
  ...devices,
  ...profile,
  ...media,
  ...admin,
  ...adminTokens,
  ...adminUsers,
  ...adminRooms,
  ...adminMedia,
  ...adminReports,
  ...voip,
];
