/** Every room route: creation, membership, state, sending, reading, aliases, the directory and search. */
import type { Route } from "../http/types.ts";
import { routes as createRoom } from "./create-room.ts";
import { routes as directory } from "./directory.ts";
import { routes as membership } from "./membership.ts";
import { routes as relations } from "./relations.ts";
import { routes as reports } from "./reports.ts";
import { routes as roomMessages } from "./room-messages.ts";
import { routes as roomPeek } from "./room-peek.ts";
import { routes as roomSend } from "./room-send.ts";
import { routes as roomState } from "./room-state.ts";
import { routes as roomUpgrade } from "./room-upgrade.ts";
import { routes as search } from "./search.ts";
import { routes as spaces } from "./spaces.ts";
import { routes as userDirectory } from "./user-directory.ts";

export const roomRoutes: Route[] = [
  ...createRoom,
  ...membership,
  ...roomState,
  ...roomUpgrade,
  ...roomSend,
  ...roomMessages,
  ...roomPeek,
  ...relations,
  ...directory,
  ...search,
  ...spaces,
  ...reports,
  ...userDirectory,
];
