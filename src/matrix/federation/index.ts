/** Every server-server route, served only with `matrix.federation.enabled` (isolated mode serves none). */
import type { Route } from "../http/types.ts";
import { wellKnownRoutes } from "./discovery.ts";
import { hierarchyRoutes } from "./hierarchy.ts";
import { keyRoutes } from "./keys.ts";
import { mediaRoutes } from "./media.ts";
import { inviteRoutes, membershipRoutes } from "./membership.ts";
import { queryRoutes } from "./query.ts";
import { roomReadRoutes } from "./room-reads.ts";
import { transactionRoutes } from "./transactions.ts";
import { userKeyRoutes } from "./user-keys.ts";
import { versionRoutes } from "./version.ts";

export const federationRoutes: Route[] = [
  ...keyRoutes,
  ...versionRoutes,
  ...queryRoutes,
  ...roomReadRoutes,
  ...membershipRoutes,
  ...inviteRoutes,
  ...hierarchyRoutes,
  ...userKeyRoutes,
  ...mediaRoutes,
  ...transactionRoutes,
  ...wellKnownRoutes,
];
