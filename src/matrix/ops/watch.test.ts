/** `matrix.watch` and `matrix.room.events` against a real homeserver, run as the CLI/MCP run ops. */

import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, test } from "node:test";
import { waitFor } from "../../../test/e2e/helpers/client.ts";
import { tempDir, testMatrixConfig } from "../../../test/e2e/helpers/homeserver.ts";
import { configSchema } from "../../config.ts";
import { loadRegistry } from "../../control/registry.ts";
import { silentLogger } from "../../core/logger.ts";
import type { OpContext } from "../../core/ops.ts";
import { runtimePaths } from "../../core/paths.ts";
import { type RunningHomeserver, startHomeserver } from "../homeserver.ts";
import { roomCreate, roomSend } from "./rooms.ts";
import { roomEvents, watch } from "./watch.ts";

let home: string;
let hs: RunningHomeserver;
let ctx: OpContext;
const printed: string[] = [];

before(async () => {
  home = tempDir("ami-watch-");
  const paths = runtimePaths(home);
  const config = configSchema.parse({ matrix: testMatrixConfig() });
  hs = await startHomeserver(config.matrix, paths.serviceData("matrix"), silentLogger);
  config.matrix.port = Number(new URL(hs.url).port);
  ctx = {
    config,
    configPath: undefined,
    registry: (only) => loadRegistry(config, only),
    paths,
    log: silentLogger,
    progress: () => {},
    signal: new AbortController().signal,
    print: (l) => printed.push(l),
    interactive: false,
  };
});
after(async () => {
  await hs.close();
  rmSync(home, { recursive: true, force: true });
});

const send = (room: string, text: string) => roomSend.run(roomSend.input.parse({ room, text }), ctx);

test("matrix.room.events pages a room's events after a token", async () => {
  const { roomId } = await roomCreate.run(roomCreate.input.parse({ name: "events" }), ctx);
  for (const t of ["one", "two", "three"]) await send(roomId, t);
  const first = await roomEvents.run(roomEvents.input.parse({ room: roomId, limit: 2 }), ctx);
  roomEvents.output.parse(first);
  assert.deepEqual(
    first.events.map((e) => e.content.body),
    ["two", "three"],
  );
  assert.deepEqual((await roomEvents.run(roomEvents.input.parse({ room: roomId, since: first.next }), ctx)).events, []);
  for (const t of ["four", "five", "six"]) await send(roomId, t);
  const page = await roomEvents.run(roomEvents.input.parse({ room: roomId, since: first.next, limit: 2 }), ctx);
  assert.deepEqual(
    page.events.map((e) => e.content.body),
    ["four", "five"],
  );
  assert.equal(page.more, true);
  const rest = await roomEvents.run(roomEvents.input.parse({ room: roomId, since: page.next }), ctx);
  assert.deepEqual(
    rest.events.map((e) => e.content.body),
    ["six"],
  );
  assert.equal(rest.more, false);
});

test("matrix.watch prints new events of one room as JSON lines until aborted", async () => {
  const a = await roomCreate.run(roomCreate.input.parse({ name: "watched" }), ctx);
  const b = await roomCreate.run(roomCreate.input.parse({ name: "other" }), ctx);
  const ac = new AbortController();
  const running = watch.run(watch.input.parse({ room: a.roomId }), { ...ctx, signal: ac.signal });
  await waitFor("the watch to connect", () => hs.hs.metrics.activeWebsockets === 1);
  await new Promise((r) => setTimeout(r, 200)); // the initial frame (skipped) has been received
  await send(b.roomId, "elsewhere");
  await send(a.roomId, "hello watcher");
  const lines = () => printed.map((l) => JSON.parse(l));
  await waitFor("the message line", () => lines().some((l) => l.event?.content?.body === "hello watcher"));
  ac.abort();
  const out = await running;
  watch.output.parse(out);
  assert.ok(lines().every((l) => l.room_id === a.roomId));
  assert.ok(out.events >= 1);
});
