/** The matrix user/room ops, run as the CLI and MCP run them, against a real homeserver in a temp runtime dir. */

import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Config, configSchema } from "../../src/config.ts";
import { loadRegistry } from "../../src/control/registry.ts";
import type { AmiError } from "../../src/core/errors.ts";
import { silentLogger } from "../../src/core/logger.ts";
import type { OpContext, OpDef } from "../../src/core/ops.ts";
import { runtimePaths } from "../../src/core/paths.ts";
import { type RunningHomeserver, startHomeserver } from "../../src/matrix/homeserver.ts";
import { matrixOps } from "../../src/matrix/ops/index.ts";
import { tempDir, testMatrixConfig } from "./helpers/homeserver.ts";

const op = (name: string): OpDef => {
  const d = matrixOps.find((o) => o.name === name);
  if (!d) throw new Error(`no op ${name}`);
  return d;
};

/** Parse input and output through the op's schemas, as the CLI/MCP surfaces do. */
async function run(ctx: OpContext, name: string, input: Record<string, unknown>): Promise<any> {
  const d = op(name);
  const out = await d.run(d.input.parse(input), ctx);
  d.output.parse(out);
  assert.equal(typeof d.human?.(out), "string");
  return out;
}

function contextFor(config: Config, home: string): OpContext {
  return {
    config,
    configPath: undefined,
    registry: (only) => loadRegistry(config, only),
    paths: runtimePaths(home),
    log: silentLogger,
    progress: () => {},
    signal: new AbortController().signal,
    print: () => {},
    interactive: false,
  };
}

describe("matrix ops", () => {
  let home: string;
  let hs: RunningHomeserver;
  let ctx: OpContext;

  before(async () => {
    home = tempDir("ami-ops-");
    const paths = runtimePaths(home);
    const config = configSchema.parse({ matrix: testMatrixConfig({ registration: { enabled: false } }) });
    hs = await startHomeserver(config.matrix, paths.serviceData("matrix"), silentLogger);
    config.matrix.port = Number(new URL(hs.url).port);
    ctx = contextFor(config, home);
  });
  after(async () => {
    await hs.close();
    rmSync(home, { recursive: true, force: true });
  });

  test("matrix federation status|destinations on an isolated server: off, nothing queued; retry of an unknown server", async () => {
    const st = await run(ctx, "matrix.federation.status", {});
    assert.equal(st.enabled, false);
    assert.equal(st.keyId, hs.hs.signingKey.keyId);
    assert.deepEqual([st.destinations, st.queuedPdus, st.queuedEdus], [0, 0, 0]);
    assert.deepEqual(await run(ctx, "matrix.federation.destinations", {}), { destinations: [] });
    await assert.rejects(run(ctx, "matrix.federation.retry", { server: "nowhere.test" }), /Unknown destination/);
  });

  test("every op has schemas, annotations and a human rendering", () => {
    const names = matrixOps.map((o) => o.name).sort();
    assert.deepEqual(names, [
      "matrix.federation.destinations",
      "matrix.federation.keys",
      "matrix.federation.resolve",
      "matrix.federation.retry",
      "matrix.federation.status",
      "matrix.media.delete",
      "matrix.media.list",
      "matrix.media.purge",
      "matrix.media.quarantine",
      "matrix.report.delete",
      "matrix.report.list",
      "matrix.report.show",
      "matrix.room.block",
      "matrix.room.create",
      "matrix.room.delete",
      "matrix.room.events",
      "matrix.room.list",
      "matrix.room.members",
      "matrix.room.messages",
      "matrix.room.search",
      "matrix.room.send",
      "matrix.room.show",
      "matrix.user.create",
      "matrix.user.deactivate",
      "matrix.user.list",
      "matrix.user.reset-password",
      "matrix.user.shadow-ban",
      "matrix.user.show",
      "matrix.watch",
    ]);
    for (const o of matrixOps) {
      assert.ok(o.input && o.output && o.human, o.name);
      assert.equal(typeof o.annotations.readOnly, "boolean");
    }
  });

  test("user create (shared secret), list, deactivate", async () => {
    const alice = await run(ctx, "matrix.user.create", { username: "alice", password: "pw alice" });
    assert.deepEqual(alice, { userId: "@alice:localhost", admin: false });
    const boss = await run(ctx, "matrix.user.create", { username: "boss", password: "pw boss", admin: true });
    assert.equal(boss.admin, true);
    assert.equal((await hs.hs.store.accounts.getUser("@boss:localhost"))?.admin, true);
    await assert.rejects(
      run(ctx, "matrix.user.create", { username: "alice", password: "x" }),
      (e: AmiError) => e.code === "M_USER_IN_USE",
    );
    const login = await fetch(`${hs.url}/_matrix/client/v3/login`, {
      method: "POST",
      body: JSON.stringify({ type: "m.login.password", user: "alice", password: "pw alice" }),
    });
    assert.equal(login.status, 200);

    const list = await run(ctx, "matrix.user.list", {});
    const ids = list.users.map((u: any) => u.userId);
    assert.ok(
      ids.includes("@alice:localhost") && ids.includes("@boss:localhost") && ids.includes("@ami-streams:localhost"),
    );
    assert.ok(existsSync(join(home, "run", "matrix-ops-token.json")));

    const d = await run(ctx, "matrix.user.deactivate", { user: "alice" });
    assert.deepEqual(d, { userId: "@alice:localhost", deactivated: true });
    assert.equal((await hs.hs.store.accounts.getUser("@alice:localhost"))?.deactivated, true);
    await assert.rejects(
      run(ctx, "matrix.user.deactivate", { user: "@ghost:localhost" }),
      (e: AmiError) => e.code === "M_NOT_FOUND",
    );
  });

  test("room create, list, send (by ID and alias), messages", async () => {
    await run(ctx, "matrix.user.create", { username: "bob", password: "pw bob" });
    const room = await run(ctx, "matrix.room.create", { name: "Ops room", alias: "ops", invite: ["bob"] });
    assert.match(room.roomId, /^!/);
    assert.equal(room.alias, "#ops:localhost");
    const listed = await run(ctx, "matrix.room.list", {});
    const mine = listed.rooms.find((r: any) => r.roomId === room.roomId);
    assert.deepEqual([mine.name, mine.alias], ["Ops room", "#ops:localhost"]);

    const a = await run(ctx, "matrix.room.send", { room: room.roomId, text: "first" });
    const b = await run(ctx, "matrix.room.send", { room: "#ops:localhost", text: "second" });
    assert.equal(b.roomId, room.roomId);
    assert.notEqual(a.eventId, b.eventId);
    const msgs = await run(ctx, "matrix.room.messages", { room: "#ops:localhost", limit: 10 });
    assert.deepEqual(
      msgs.messages.map((m: any) => [m.body, m.sender]),
      [
        ["first", "@ami-streams:localhost"],
        ["second", "@ami-streams:localhost"],
      ],
    );
    const found = await run(ctx, "matrix.room.search", { term: "seco", room: "#ops:localhost" });
    assert.equal(found.count, 1);
    assert.deepEqual([found.results[0].text, found.results[0].eventId], ["second", b.eventId]);
    const last = await run(ctx, "matrix.room.messages", { room: room.roomId, limit: 1 });
    assert.deepEqual(
      last.messages.map((m: any) => m.body),
      ["second"],
    );
    await assert.rejects(
      run(ctx, "matrix.room.send", { room: "#nope:localhost", text: "x" }),
      (e: AmiError) => e.code === "M_NOT_FOUND",
    );
    await assert.rejects(
      run(ctx, "matrix.room.send", { room: "ops", text: "x" }),
      (e: AmiError) => e.code === "AMI_INVALID_INPUT",
    );
  });

  test("moderation ops: user show/reset-password/shadow-ban, room show/members/block/delete, media, reports", async () => {
    const cs = async (method: string, path: string, token: string, body?: unknown, type = "application/json") => {
      const r = await fetch(`${hs.url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": type },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      return { status: r.status, body: await r.json() };
    };
    const login = async (user: string, password: string) =>
      (
        await (
          await fetch(`${hs.url}/_matrix/client/v3/login`, {
            method: "POST",
            body: JSON.stringify({ type: "m.login.password", user, password }),
          })
        ).json()
      ).access_token as string;
    await run(ctx, "matrix.user.create", { username: "mallory", password: "pw m" });
    await run(ctx, "matrix.user.create", { username: "victor", password: "pw v" });
    const mallory = await login("mallory", "pw m");
    const victor = await login("victor", "pw v");
    const room = await run(ctx, "matrix.room.create", { name: "Mod room", alias: "mod", public: true });
    for (const t of [mallory, victor])
      assert.equal((await cs("POST", `/_matrix/client/v3/join/${room.roomId}`, t, {})).status, 200);

    const shown = await run(ctx, "matrix.room.show", { room: "#mod:localhost" });
    assert.deepEqual([shown.name, shown.joinedMembers, shown.blocked], ["Mod room", 3, false]);
    const members = await run(ctx, "matrix.room.members", { room: room.roomId });
    assert.ok(members.members.includes("@mallory:localhost"));

    // mallory uploads and posts; victor reports the post.
    const up = await cs("POST", "/_matrix/media/v3/upload", mallory, "bad bytes", "text/plain");
    const mxc = up.body.content_uri as string;
    const sent = await cs("PUT", `/_matrix/client/v3/rooms/${room.roomId}/send/m.room.message/1`, mallory, {
      msgtype: "m.file",
      body: "bad",
      url: mxc,
    });
    const rep = await cs(
      "POST",
      `/_matrix/client/v3/rooms/${room.roomId}/report/${encodeURIComponent(sent.body.event_id)}`,
      victor,
      {
        reason: "nasty",
      },
    );
    assert.equal(rep.status, 200);
    const reports = await run(ctx, "matrix.report.list", {});
    assert.equal(reports.total, 1);
    assert.deepEqual(
      [reports.reports[0].reporter, reports.reports[0].target, reports.reports[0].reason],
      ["@victor:localhost", "@mallory:localhost", "nasty"],
    );
    const one = await run(ctx, "matrix.report.show", { id: reports.reports[0].id });
    assert.equal((one.event as { content: { url: string } }).content.url, mxc);

    const listed = await run(ctx, "matrix.media.list", { room: "#mod:localhost" });
    assert.deepEqual(listed.uris, [mxc]);
    assert.equal((await run(ctx, "matrix.media.list", { user: "mallory" })).media[0].mediaId, mxc.split("/").pop());
    assert.equal((await run(ctx, "matrix.media.quarantine", { room: room.roomId })).quarantined, 1);
    assert.equal((await cs("GET", `/_matrix/client/v1/media/download/${mxc.slice(6)}`, victor)).status, 404);
    await run(ctx, "matrix.media.quarantine", { media: mxc, lift: true });
    assert.equal(
      (
        await fetch(`${hs.url}/_matrix/client/v1/media/download/${mxc.slice(6)}`, {
          headers: { Authorization: `Bearer ${victor}` },
        })
      ).status,
      200,
    );
    await assert.rejects(run(ctx, "matrix.media.quarantine", {}), (e: AmiError) => e.code === "M_INVALID_PARAM");
    assert.deepEqual(await run(ctx, "matrix.media.delete", { media: mxc }), {
      deleted: [mxc.split("/").pop()],
      total: 1,
    });
    assert.equal((await run(ctx, "matrix.media.purge", { olderThanDays: 0 })).total, 0);

    await run(ctx, "matrix.user.shadow-ban", { user: "mallory" });
    assert.equal((await run(ctx, "matrix.user.show", { user: "mallory" })).shadowBanned, true);
    await run(ctx, "matrix.user.shadow-ban", { user: "mallory", lift: true });
    const m = await run(ctx, "matrix.user.show", { user: "@mallory:localhost" });
    assert.deepEqual([m.shadowBanned, m.joinedRooms], [false, [room.roomId]]);
    await run(ctx, "matrix.user.reset-password", { user: "mallory", password: "new pw" });
    assert.equal((await cs("GET", "/_matrix/client/v3/account/whoami", mallory)).status, 401, "logged out");
    assert.ok(await login("mallory", "new pw"));

    assert.equal((await run(ctx, "matrix.report.delete", { id: one.id })).deleted, true);
    await assert.rejects(run(ctx, "matrix.report.show", { id: one.id }), (e: AmiError) => e.code === "M_NOT_FOUND");

    const shut = await run(ctx, "matrix.room.delete", {
      room: "#mod:localhost",
      newRoomUser: "moderator",
      keepHistory: true,
    });
    assert.ok(shut.kickedUsers.includes("@victor:localhost"));
    assert.deepEqual(shut.localAliases, ["#mod:localhost"]);
    assert.equal((await run(ctx, "matrix.room.show", { room: room.roomId })).blocked, true);
    assert.equal((await run(ctx, "matrix.room.block", { room: room.roomId, unblock: true })).blocked, false);
  });

  test("a rejected cached token is replaced, and a lost token file is recovered", async () => {
    const file = join(home, "run", "matrix-ops-token.json");
    const cached = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(file, JSON.stringify({ ...cached, accessToken: "revoked" }));
    assert.ok((await run(ctx, "matrix.room.list", {})).total >= 1);
    assert.notEqual(JSON.parse(readFileSync(file, "utf8")).accessToken, "revoked");
    rmSync(file);
    assert.ok((await run(ctx, "matrix.user.list", {})).total >= 1, "logs the existing service account in again");
  });

  test("AMI_NOT_RUNNING when the homeserver is down", async () => {
    const home2 = tempDir("ami-ops-down-");
    try {
      const config = configSchema.parse({
        matrix: { port: 1, registration: { sharedSecret: "0123456789abcdef0123" } },
      });
      const down = contextFor(config, home2);
      for (const [name, input] of [
        ["matrix.user.create", { username: "x", password: "y" }],
        ["matrix.user.list", {}],
        ["matrix.room.send", { room: "!a:localhost", text: "x" }],
      ] as const) {
        await assert.rejects(
          run(down, name, input),
          (e: AmiError) => e.code === "AMI_NOT_RUNNING" && /ami-streams matrix start/.test(e.message),
          name,
        );
      }
      // No shared secret anywhere: also "not running" (the homeserver generates it on first start).
      const bare = contextFor(configSchema.parse({ matrix: { port: 1 } }), home2);
      await assert.rejects(
        run(bare, "matrix.user.create", { username: "x", password: "y" }),
        (e: AmiError) => e.code === "AMI_NOT_RUNNING",
      );
    } finally {
      rmSync(home2, { recursive: true, force: true });
    }
  });
});
