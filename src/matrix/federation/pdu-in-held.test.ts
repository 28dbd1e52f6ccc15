/**
 * PDUs held while a join of their room is under way (PduIn.beginJoin/endJoin), on a real homeserver: answered as
 * accepted and counted, a malformed one refused, at most MAX_HELD_PDUS, and dropped (nothing stored) when the join
 * fails; after that the room is unknown again. The applied path is e2e (matrix-federation-join-remote.test.ts).
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, test } from "node:test";
import { tempDir, testMatrixConfig } from "../../../test/e2e/helpers/homeserver.ts";
import { configSchema } from "../../config.ts";
import { silentLogger } from "../../core/logger.ts";
import { signEvent } from "../events/event-signing.ts";
import { eventIdFor } from "../events/hashing.ts";
import { generateSigningKey } from "../events/signing.ts";
import { type RunningHomeserver, startHomeserver } from "../homeserver.ts";
import { MAX_HELD_PDUS } from "./pdu-in.ts";

let dir: string;
let running: RunningHomeserver;
const ROOM = "!joining:remote.test";
const key = generateSigningKey();
const pdu = (n: number, over: Record<string, unknown> = {}) =>
  signEvent(
    {
      room_id: ROOM,
      sender: "@alice:remote.test",
      type: "m.room.message",
      content: { body: `m${n}` },
      origin_server_ts: 1_700_000_000_000 + n,
      depth: 5,
      prev_events: [`$${"a".repeat(43)}`],
      auth_events: [`$${"b".repeat(43)}`],
      ...over,
    },
    "remote.test",
    key,
    "10",
  ) as Record<string, unknown>;

before(async () => {
  dir = tempDir("ami-pdu-held-");
  const config = configSchema.parse({ matrix: testMatrixConfig({ federation: { enabled: true, hostMap: {} } }) });
  running = await startHomeserver(config.matrix, dir, silentLogger);
});
after(async () => {
  await running.close();
  rmSync(dir, { recursive: true, force: true });
});

test("held during a join: accepted, counted, bounded; dropped when the join fails", async () => {
  const { hs } = running;
  const unknown = await hs.federation.onPdus("remote.test", [pdu(0)]);
  assert.match(String(Object.values(unknown)[0].error), /unknown room/, "no join under way: unknown room");
  hs.pduIn.beginJoin(ROOM, "10");
  const held0 = hs.pduIn.stats.held;
  const first = pdu(1);
  assert.deepEqual(await hs.federation.onPdus("remote.test", [first]), { [eventIdFor(first, "10")]: {} });
  const bad = await hs.federation.onPdus("remote.test", [pdu(2, { sender: "@mallory:other.test" })]);
  assert.match(String(Object.values(bad)[0].error), /not on the origin/, "the format is checked when held");
  const many = Array.from({ length: MAX_HELD_PDUS }, (_, i) => pdu(10 + i));
  const res = await hs.federation.onPdus("remote.test", many);
  const errors = Object.values(res).filter((r) => r.error);
  assert.equal(errors.length, 1, "one over the bound");
  assert.match(String(errors[0].error), /too many events held/);
  assert.equal(hs.pduIn.stats.held - held0, MAX_HELD_PDUS);
  await hs.pduIn.endJoin(ROOM, false);
  assert.equal(await hs.store.rooms.getRoom(ROOM), null, "nothing stored");
  assert.deepEqual(await hs.store.dag.getDagEvents([eventIdFor(first, "10")]), []);
  const after = await hs.federation.onPdus("remote.test", [pdu(3)]);
  assert.match(String(Object.values(after)[0].error), /unknown room/, "the join is over");
});
