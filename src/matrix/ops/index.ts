/** The matrix user/room operations (CLI `ami-streams matrix ...`, MCP `matrix_*`). */
import type { OpDef } from "../../core/ops.ts";
import {
  federationDestinations,
  federationKeys,
  federationResolve,
  federationRetry,
  federationStatus,
} from "./federation.ts";
import { mediaDelete, mediaList, mediaPurge, mediaQuarantine } from "./media.ts";
import { reportDelete, reportList, reportShow } from "./reports.ts";
import { roomBlock, roomDelete, roomMembers, roomShow } from "./room-admin.ts";
import { roomCreate, roomList, roomMessages, roomSend } from "./rooms.ts";
import { roomSearch } from "./search.ts";
import { userCreate, userDeactivate, userList, userResetPassword, userShadowBan, userShow } from "./users.ts";
import { roomEvents, watch } from "./watch.ts";

// biome-ignore lint/suspicious/noExplicitAny: ops of different input types; run() takes its input contravariantly, so only any unites them
export const matrixOps: OpDef<any, any>[] = [
  userCreate,
  userList,
  userDeactivate,
  userShow,
  userResetPassword,
  userShadowBan,
  roomCreate,
  roomList,
  roomShow,
  roomMembers,
  roomBlock,
  roomDelete,
  roomSend,
  roomMessages,
  roomSearch,
  roomEvents,
  watch,
  mediaList,
  mediaQuarantine,
  mediaDelete,
  mediaPurge,
  reportList,
  reportShow,
  reportDelete,
  federationKeys,
  federationResolve,
  federationStatus,
  federationDestinations,
  federationRetry,
];
