/** Routes of /sync and everything it delivers: filters, typing, receipts, read markers, presence, account data, push rules. */
import type { Route } from "../http/types.ts";
import { routes as accountData } from "./account-data.ts";
import { routes as filter } from "./filter.ts";
import { routes as presence } from "./presence.ts";
import { routes as pushRules } from "./push-rules.ts";
import { routes as pushers } from "./pushers.ts";
import { routes as readMarkers } from "./read-markers.ts";
import { routes as receipts } from "./receipts.ts";
import { routes as sync } from "./sync.ts";
import { routes as typing } from "./typing.ts";

export const syncRoutes: Route[] = [
  ...sync,
  ...filter,
  ...typing,
  ...receipts,
  ...readMarkers,
  ...presence,
  ...accountData,
  ...pushRules,
  ...pushers,
];
