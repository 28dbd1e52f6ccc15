/** Smaller spec sections: client-server admin (whois, lock, suspend), mutual rooms, third-party lookups, discovery. */
import type { Route } from "../http/types.ts";
import { routes as adminFederation } from "./admin-federation.ts";
import { routes as adminModeration } from "./admin-moderation.ts";
import { routes as discovery } from "./discovery.ts";
import { routes as mutualRooms } from "./mutual-rooms.ts";
import { routes as oldSync } from "./old-sync.ts";
import { routes as thirdParty } from "./third-party.ts";

export const miscRoutes: Route[] = [
  ...adminModeration,
  ...adminFederation,
  ...mutualRooms,
  ...thirdParty,
  ...discovery,
  ...oldSync,
];
