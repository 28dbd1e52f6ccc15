/** The matrix user/room operations (CLI `ami-streams matrix ...`, MCP `matrix_*`). */
import type { OpDef } from "../../core/ops.ts";
import { roomCreate, roomList, roomMessages, roomSend } from "./rooms.ts";
import { roomSearch } from "./search.ts";
import { userCreate, userDeactivate, userList } from "./users.ts";
import { roomEvents, watch } from "./watch.ts";

// biome-ignore lint/suspicious/noExplicitAny: ops of different input types; run() takes its input contravariantly, so only any unites them
export const matrixOps: OpDef<any, any>[] = [
  userCreate,
  userList,
  userDeactivate,
  roomCreate,
  roomList,
  roomSend,
  roomMessages,
  roomSearch,
  roomEvents,
  watch,
];
