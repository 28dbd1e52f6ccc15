/**
 * Child process for the crash test: persists events as fast as it can and prints each stream position on stdout
 * once persistEvent resolved (= the homeserver would have answered 200). The parent kill -9s it mid-stream.
 * Usage: node crash-writer.ts <database> <dataDir>
 */
import { openStore } from "../open.ts";
import { event, member, room } from "./helpers.ts";

const [database, dataDir] = process.argv.slice(2);
const R = "!crash:hs";
const s = await openStore(database, dataDir);
await s.rooms.createRoom(room(R));
for (let stream = 1; ; stream++) {
  // Every 5th event is a state change, so state, history and memberships are under load too.
  const e =
    stream % 5 === 0
      ? member(stream, R, `@u${stream % 7}:hs`, stream % 2 ? "join" : "leave")
      : event(stream, R, "m.room.message", { content: { body: `message ${stream}` } });
  await s.events.persistEvent({ ...e, txn: { userId: e.sender, deviceId: "D", scope: "S", txnId: `t${stream}` } });
  // Wait for the line to leave: this also yields to the event loop, which a loop of awaits on a synchronous
  // backend (SQLite) would otherwise never do, leaving stdout unflushed.
  await new Promise((resolve) => process.stdout.write(`${stream}\n`, resolve));
}
