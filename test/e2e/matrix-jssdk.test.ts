/**
 * The real-client proof: matrix-js-sdk 43 against the homeserver in a child process, on SQLite and on
 * PostgreSQL. Two users register, log in, create a room, invite, join, exchange 100 messages, see typing and
 * receipts, upload and download a file, paginate backwards, and keep everything across a server restart.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  ClientEvent,
  Direction,
  EventType,
  type MatrixClient,
  PendingEventOrdering,
  type Room,
  SyncState,
} from "matrix-js-sdk";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { api, enc, ok, registerUser, type Session, sdkClient, waitFor } from "./helpers/client.ts";
import { BACKENDS, ChildHomeserver } from "./helpers/homeserver.ts";

const PASSWORD = "correct horse battery";
const N = 100;

/** Start the SDK's sync loop and resolve once the first sync is processed. */
async function startSyncing(c: MatrixClient): Promise<void> {
  const ready = new Promise<void>((resolve, reject) => {
    const on = (state: SyncState, _prev: SyncState | null, data?: { error?: Error }) => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) {
        c.off(ClientEvent.Sync, on);
        resolve();
      } else if (state === SyncState.Error) {
        c.off(ClientEvent.Sync, on);
        reject(new Error(`initial sync failed: ${data?.error?.message ?? "unknown"}`));
      }
    };
    c.on(ClientEvent.Sync, on);
  });
  // Detached pending events: own messages enter the timeline where /sync puts them, so the order is the server's.
  await c.startClient({ initialSyncLimit: 200, pendingEventOrdering: PendingEventOrdering.Detached });
  await ready;
}

/** Compact text of a message list, so a failed comparison prints readably. */
const summary = (ms: { id: string; body: string }[]) =>
  ms.map((m) => `${m.body.split(" ")[1]}=${m.id.slice(0, 7)}`).join(" ");

/** Message bodies of the live timeline that the server has confirmed (real event IDs, not local echoes). */
function confirmedMessages(room: Room | null): { id: string; body: string; sender: string }[] {
  if (!room) return [];
  return room
    .getLiveTimeline()
    .getEvents()
    .filter((e) => e.getType() === EventType.RoomMessage && e.getContent().msgtype === "m.text")
    .filter((e) => e.getId()?.startsWith("$") && !e.status)
    .map((e) => ({ id: e.getId()!, body: e.getContent().body, sender: e.getSender()! }));
}

for (const backend of BACKENDS) {
  describe(`matrix-js-sdk end to end (${backend})`, () => {
    let hs: ChildHomeserver;
    let alice: Session;
    let bob: Session;
    let ca: MatrixClient;
    let cb: MatrixClient;
    let roomId = "";
    const sent: { id: string; body: string; sender: string }[] = [];
    let nextBatchBeforeRestart = "";
    let fileEventId = "";

    before(async () => {
      hs = await ChildHomeserver.start({ backend });
    });
    after(async () => {
      ca?.stopClient();
      cb?.stopClient();
      const errors = hs?.errorLines() ?? [];
      await hs?.dispose();
      assert.deepEqual(errors, [], "the homeserver logged internal errors");
    });

    it("discovery: /versions and /.well-known/matrix/client describe this server", async () => {
      const v = await ok(hs.url, "GET", "/_matrix/client/versions");
      assertSpec("versions.yaml", "/versions", "GET", 200, v);
      assert.ok(v.versions.includes("v1.11"), `versions: ${v.versions}`);
      const wk = await ok(hs.url, "GET", "/.well-known/matrix/client");
      assert.equal(
        wk["m.homeserver"]?.base_url?.replace(/\/$/, ""),
        hs.url,
        "well-known base_url is where the server listens",
      );
    });

    it("registers two users and logs them in with a password through the SDK", async () => {
      const u = `alice${randomBytes(3).toString("hex")}`;
      await registerUser(hs.url, u, PASSWORD);
      await registerUser(hs.url, `bob${u.slice(5)}`, PASSWORD);
      const login = async (user: string): Promise<Session> => {
        const anon = sdkClient(hs.url);
        const r = await anon.loginRequest({
          type: "m.login.password",
          identifier: { type: "m.id.user", user },
          password: PASSWORD,
        });
        assert.match(r.access_token, /\S{8,}/);
        return { userId: r.user_id, accessToken: r.access_token, deviceId: r.device_id };
      };
      alice = await login(u);
      bob = await login(`bob${u.slice(5)}`);
      assert.equal(alice.userId, `@${u}:localhost`);
      const wrong = await api(hs.url, "POST", "/_matrix/client/v3/login", {
        body: { type: "m.login.password", identifier: { type: "m.id.user", user: u }, password: "nope" },
      });
      assert.equal(wrong.status, 403);
      assert.equal(wrong.json.errcode, "M_FORBIDDEN");
      ca = sdkClient(hs.url, alice);
      cb = sdkClient(hs.url, bob);
      assert.equal((await ca.whoami()).user_id, alice.userId);
      await Promise.all([startSyncing(ca), startSyncing(cb)]);
    });

    it("creates a room, invites, and the invitee joins after seeing the invite in /sync", async () => {
      roomId = (await ca.createRoom({ name: "e2e", topic: "proof" })).room_id;
      await ca.invite(roomId, bob.userId);
      await waitFor("bob sees the invite", () => cb.getRoom(roomId)?.getMyMembership() === "invite");
      assert.equal(cb.getRoom(roomId)!.getMember(bob.userId)?.events.member?.getSender(), alice.userId);
      await cb.joinRoom(roomId);
      await waitFor("alice sees bob joined", () => ca.getRoom(roomId)?.getMember(bob.userId)?.membership === "join");
      await waitFor("bob is joined", () => cb.getRoom(roomId)?.getMyMembership() === "join");
      assert.equal(cb.getRoom(roomId)!.name, "e2e");
      assert.deepEqual(((await ca.getJoinedRooms()).joined_rooms as string[]).includes(roomId), true);
    });

    it(`exchanges ${N} alternating messages; each client sees all of them in order via /sync`, async () => {
      for (let i = 0; i < N; i++) {
        const [c, s] = i % 2 === 0 ? [ca, alice] : [cb, bob];
        const body = `message ${i} from ${s.userId} ✓`;
        const r = await c.sendTextMessage(roomId, body);
        assert.match(r.event_id, /^\$/);
        sent.push({ id: r.event_id, body, sender: s.userId });
      }
      for (const [name, c] of [
        ["alice", ca],
        ["bob", cb],
      ] as const) {
        await waitFor(`${name} sees ${N} messages`, () => confirmedMessages(c.getRoom(roomId)).length >= N);
        assert.equal(summary(confirmedMessages(c.getRoom(roomId))), summary(sent), `${name}'s timeline`);
      }
    });

    it("typing notifications arrive at the other client and stop", async () => {
      await ca.sendTyping(roomId, true, 20_000);
      await waitFor("bob sees alice typing", () => cb.getRoom(roomId)?.getMember(alice.userId)?.typing === true);
      await ca.sendTyping(roomId, false, 0);
      await waitFor("bob sees alice stop typing", () => cb.getRoom(roomId)?.getMember(alice.userId)?.typing === false);
    });

    it("read receipts arrive at the other client", async () => {
      const last = cb.getRoom(roomId)!.findEventById(sent[N - 1].id);
      assert.ok(last, "bob has the last event");
      await cb.sendReadReceipt(last);
      await waitFor(
        "alice sees bob's receipt",
        () => ca.getRoom(roomId)?.getReadReceiptForUserId(bob.userId, true)?.eventId === sent[N - 1].id,
      );
      const earlier = ca.getRoom(roomId)!.findEventById(sent[N - 3].id)!;
      await ca.sendReadReceipt(earlier);
      await waitFor(
        "bob sees alice's receipt",
        () => cb.getRoom(roomId)?.getReadReceiptForUserId(alice.userId, true)?.eventId === sent[N - 3].id,
      );
    });

    it("an uploaded file downloads byte-identical with its content type and filename", async () => {
      const bytes = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(300_000)]);
      const up = await ca.uploadContent(bytes, { name: "report 1.bin", type: "application/x-ami-test" });
      assert.match(up.content_uri, /^mxc:\/\/localhost\/[A-Za-z0-9_-]+$/);
      const mediaId = up.content_uri.split("/").pop()!;
      const base = `/_matrix/client/v1/media/download/localhost/${mediaId}`;
      const res = await fetch(hs.url + base, { headers: { Authorization: `Bearer ${bob.accessToken}` } });
      assert.equal(res.status, 200);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes), "bytes round-trip");
      assert.match(res.headers.get("content-type") ?? "", /^application\/x-ami-test/);
      assert.match(
        res.headers.get("content-disposition") ?? "",
        /filename(\*=utf-8''report%201\.bin|="report 1\.bin")/i,
      );
      const named = await fetch(`${hs.url}${base}/other.bin`, {
        headers: { Authorization: `Bearer ${bob.accessToken}` },
      });
      assert.equal(named.status, 200);
      assert.ok(Buffer.from(await named.arrayBuffer()).equals(bytes));
      assert.match(named.headers.get("content-disposition") ?? "", /other\.bin/);
      const unauth = await api(hs.url, "GET", base);
      assert.equal(unauth.status, 401);
      assert.equal(unauth.json.errcode, "M_MISSING_TOKEN");
      // The legacy unauthenticated route was frozen in v1.11: media uploaded since is not there.
      const legacy = await fetch(`${hs.url}/_matrix/media/v3/download/localhost/${mediaId}`);
      assert.equal(legacy.status, 404);
      assert.equal(((await legacy.json()) as any).errcode, "M_NOT_FOUND");
      // The SDK's own URL for authenticated media points at the same bytes.
      const sdkUrl = cb.mxcUrlToHttp(up.content_uri, undefined, undefined, undefined, false, true, true)!;
      const viaSdk = await fetch(sdkUrl, { headers: { Authorization: `Bearer ${bob.accessToken}` } });
      assert.ok(Buffer.from(await viaSdk.arrayBuffer()).equals(bytes));
      fileEventId = (
        await cb.sendMessage(roomId, { msgtype: "m.file", body: "report 1.bin", url: up.content_uri } as any)
      ).event_id;
    });

    it("backwards pagination returns the full history (raw /messages and the SDK's scrollback)", async () => {
      const bodies: string[] = [];
      let from: string | null = null;
      let pages = 0;
      for (;;) {
        const r = await ca.createMessagesRequest(roomId, from, 7, Direction.Backward);
        pages++;
        for (const e of r.chunk)
          if (e.type === "m.room.message" && e.content.msgtype === "m.text") bodies.push(e.content.body);
        if (!r.end || r.chunk.length === 0) break;
        from = r.end;
        assert.ok(pages < 100, "pagination terminates");
      }
      assert.equal(bodies.reverse().join("|"), sent.map((s) => s.body).join("|"));

      const raw = await ok(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=10`, {
        token: bob.accessToken,
      });
      assertSpec("message_pagination.yaml", "/rooms/{roomId}/messages", "GET", 200, raw);

      // A fresh client that only got 5 events in its initial sync scrolls back to the room's creation.
      const fresh = sdkClient(hs.url, bob);
      await new Promise<void>((resolve) => {
        fresh.on(ClientEvent.Sync, (s: SyncState) => s === SyncState.Prepared && resolve());
        void fresh.startClient({ initialSyncLimit: 5, pendingEventOrdering: PendingEventOrdering.Detached });
      });
      try {
        const room = fresh.getRoom(roomId)!;
        for (let i = 0; i < 60 && room.getLiveTimeline().getEvents()[0]?.getType() !== EventType.RoomCreate; i++) {
          await fresh.scrollback(room, 20);
        }
        const all = room.getLiveTimeline().getEvents();
        assert.equal(all[0].getType(), EventType.RoomCreate, "scrollback reaches m.room.create");
        const texts = all.filter((e) => e.getType() === EventType.RoomMessage && e.getContent().msgtype === "m.text");
        assert.equal(texts.map((e) => e.getId()).join(" "), sent.map((s) => s.id).join(" "));
      } finally {
        fresh.stopClient();
      }
    });

    it("/sync and /messages responses match the spec's schemas", async () => {
      const s = await ok(hs.url, "GET", "/_matrix/client/v3/sync?timeout=0", { token: alice.accessToken });
      assertSpec("sync.yaml", "/sync", "GET", 200, s);
      assert.ok(s.rooms.join[roomId], "room in rooms.join");
      nextBatchBeforeRestart = s.next_batch;
      const lazy = encodeURIComponent(
        JSON.stringify({ room: { state: { lazy_load_members: true }, timeline: { limit: 3 } } }),
      );
      const l = await ok(hs.url, "GET", `/_matrix/client/v3/sync?timeout=0&filter=${lazy}`, { token: bob.accessToken });
      assertSpec("sync.yaml", "/sync", "GET", 200, l);
      const jr = l.rooms.join[roomId];
      assert.equal(jr.timeline.limited, true);
      assert.equal(typeof jr.timeline.prev_batch, "string");
      assert.deepEqual(
        jr.timeline.events.map((e: any) => e.event_id),
        [sent[N - 2].id, sent[N - 1].id, fileEventId],
      );
      // Paginating back from prev_batch continues exactly where the timeline starts: no gap, no overlap.
      const back = await ok(
        hs.url,
        "GET",
        `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=2&from=${enc(jr.timeline.prev_batch)}`,
        { token: bob.accessToken },
      );
      assert.deepEqual(
        back.chunk.map((e: any) => e.event_id),
        [sent[N - 3].id, sent[N - 4].id],
      );
      const ev = await ok(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(sent[0].id)}`, {
        token: bob.accessToken,
      });
      assertSpec("rooms.yaml", "/rooms/{roomId}/event/{eventId}", "GET", 200, ev);
    });

    it("after a restart, history, devices and access tokens persist", async () => {
      const devicesBefore = (await ca.getDevices()).devices.map((d) => d.device_id).sort();
      ca.stopClient();
      cb.stopClient();
      await hs.restart();

      const who = await ok(hs.url, "GET", "/_matrix/client/v3/account/whoami", { token: alice.accessToken });
      assert.equal(who.user_id, alice.userId);
      assert.equal(who.device_id, alice.deviceId);
      const since = await api(hs.url, "GET", `/_matrix/client/v3/sync?timeout=0&since=${enc(nextBatchBeforeRestart)}`, {
        token: alice.accessToken,
      });
      assert.equal(since.status, 200, `incremental sync with a pre-restart token: ${since.text.slice(0, 300)}`);

      ca = sdkClient(hs.url, alice);
      cb = sdkClient(hs.url, bob);
      const devicesAfter = (await ca.getDevices()).devices.map((d) => d.device_id).sort();
      assert.deepEqual(devicesAfter, devicesBefore);
      assert.ok(devicesAfter.includes(alice.deviceId));
      await Promise.all([startSyncing(ca), startSyncing(cb)]);
      assert.equal(
        summary(confirmedMessages(cb.getRoom(roomId))),
        summary(sent),
        "history after restart (initial sync)",
      );
      const r = await cb.sendTextMessage(roomId, "after restart");
      await waitFor("alice sees the post-restart message", () =>
        ca
          .getRoom(roomId)
          ?.getLiveTimeline()
          .getEvents()
          .some((e) => e.getId() === r.event_id),
      );
      const stale = await api(hs.url, "GET", "/_matrix/client/v3/account/whoami", { token: "not-a-token" });
      assert.equal(stale.status, 401);
      assert.equal(stale.json.errcode, "M_UNKNOWN_TOKEN");
    });
  });
}
