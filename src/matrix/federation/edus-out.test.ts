/**
 * The per-room cache of remote servers (edus-out.ts RoomHosts) stays equal to what the store says after joins,
 * leaves, bans and a current-state reset, on a real homeserver (SQLite, federation on, remote servers unreachable).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { homeserverPerFile } from "../../../test/e2e/helpers/homeserver.ts";
import { serverNameOf } from "../events/ids.ts";
import { invalidateRoomHosts, remoteServers } from "./edus-out.ts";

const ALICE = "@alice:localhost";

const server = homeserverPerFile("ami-room-hosts-", {
  users: [ALICE],
  matrix: { federation: { enabled: true, hostMap: {}, retryInitialMs: 60_000 } },
});

test("remote servers of a room: joins add, leaves and bans drop, a state reset re-reads", async () => {
  const { hs } = server.running;
  const { roomId } = await hs.rooms.createRoom(ALICE, { preset: "public_chat" });
  const fromStore = async () => {
    const out = new Set<string>();
    for (const m of (await hs.store.events.getMembersOfRooms([roomId])).get(roomId) ?? [])
      if (m.membership === "join" && serverNameOf(m.userId) !== hs.serverName)
        out.add(serverNameOf(m.userId) as string);
    return [...out].sort();
  };
  const check = async (want: string[], why: string) => {
    assert.deepEqual([...(await remoteServers(hs, [roomId]))].sort(), want, why);
    assert.deepEqual(await fromStore(), want, `${why} (store)`);
  };
  const member = (user: string, membership: string, sender = user) =>
    hs.rooms.sendEvent({ roomId, sender, type: "m.room.member", stateKey: user, content: { membership } });
  await check([], "only alice");
  await member("@x:a.test", "join");
  await check(["a.test"], "a join adds its server");
  await member("@y:b.test", "join");
  await member("@z:b.test", "join");
  await check(["a.test", "b.test"], "two more");
  await member("@y:b.test", "leave");
  await check(["a.test", "b.test"], "b.test keeps a member");
  await member("@z:b.test", "ban", ALICE);
  await check(["a.test"], "a ban drops the last one");
  await member("@x:a.test", "leave");
  await check([], "a leave");
  // Memberships changed behind the writer's back (as setCurrentState does): invalidation re-reads.
  await member("@w:c.test", "join");
  await check(["c.test"], "c.test");
  const row = (await hs.store.events.getMembership(roomId, "@w:c.test"))!;
  await hs.store.dag.setCurrentState(
    roomId,
    new Map(
      (await hs.store.events.getCurrentState(roomId))
        .filter((e) => e.eventId !== row.eventId)
        .map((e) => [`${e.type}\u0000${e.stateKey}` as const, e.eventId]),
    ),
  );
  invalidateRoomHosts(hs, roomId);
  await check([], "after a current-state reset");
});
