/** Every client-server (and Synapse-compatible admin) route the homeserver serves. */
import type { Route } from "../http/types.ts";
import { accountRoutes } from "./routes-account.ts";
import { keyRoutes } from "./routes-keys.ts";
import { miscRoutes } from "./routes-misc.ts";
import { roomRoutes } from "./routes-rooms.ts";
import { syncRoutes } from "./routes-sync.ts";

export const allRoutes: Route[] = [...accountRoutes, ...roomRoutes, ...syncRoutes, ...keyRoutes, ...miscRoutes];
