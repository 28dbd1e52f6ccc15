/**
 * WebSocket event streaming (docs/matrix-websocket.md) against a homeserver in its own process, with the `ws`
 * package as the client: 1,000 events arrive in order with none lost or duplicated across a forced disconnect;
 * bad tokens, garbage, binary and oversized frames get their close codes and the server stays up; a consumer that
 * stops reading is bounded (the server stops computing for it), catches up when it reads again, and is told to
 * resync when it stays stalled.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import type { SyncResponse } from "../../src/matrix/service/sync/types.ts";
import { SyncStream, timelineEvents } from "../../src/matrix/websocket/client.ts";
import { CloseCode, WS_PATH } from "../../src/matrix/websocket/protocol.ts";
import { api, enc, ok, registerUser, type Session, waitFor } from "./helpers/client.ts";
import { ChildHomeserver } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
/** Big enough that no frame's timeline is `limited` in these tests (a client would fill gaps with /messages). */
const FILTER = JSON.stringify({ room: { timeline: { limit: 1000 } } });

describe("WebSocket event stream", () => {
  let hs: ChildHomeserver;
  let alice: Session;
  let bob: Session;
  let roomId = "";

  const send = (i: number, body: string, txn = `t${i}`) =>
    ok(hs.url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/${txn}`, {
      token: alice.accessToken,
      body: { msgtype: "m.text", body },
    });
  const stats = async () => ok(hs.url, "GET", "/_ami/stats");
  const wsUrl = (query = "") => `${hs.url.replace(/^http/, "ws")}${WS_PATH}${query}`;
  /** A raw `ws` connection, resolved with its close code and reason. */
  const rawClose = (ws: WebSocket) =>
    new Promise<{ code: number; reason: string }>((resolve) => {
      ws.on("error", () => {});
      ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  const opened = (ws: WebSocket) => new Promise<void>((resolve) => ws.once("open", () => resolve()));

  before(async () => {
    hs = await ChildHomeserver.start();
    alice = await registerUser(hs.url, "wsalice");
    bob = await registerUser(hs.url, "wsbob");
    roomId = (
      await ok(hs.url, "POST", `${C}/createRoom`, { token: alice.accessToken, body: { preset: "public_chat" } })
    ).room_id;
    await ok(hs.url, "POST", `${C}/join/${enc(roomId)}`, { token: bob.accessToken, body: {} });
  });
  after(async () => {
    await hs?.dispose();
  });

  it("delivers 1,000 events in order, none lost or duplicated across a forced reconnect", async () => {
    const bodies: string[] = [];
    const onSync = (_nb: string, data: SyncResponse) => {
      const room = data.rooms?.join?.[roomId];
      assert.notEqual(room?.timeline?.limited, true, "a frame's timeline was limited");
      for (const e of timelineEvents(data, roomId)) {
        const body = e.content?.body;
        if (e.type === "m.room.message" && typeof body === "string" && body.startsWith("order ")) bodies.push(body);
      }
    };
    let stream = new SyncStream(hs.url, { token: bob.accessToken, filter: FILTER, onSync });
    await stream.ready;
    await waitFor("the initial frame", () => stream.since);

    const N = 1000;
    const sending = (async () => {
      for (let i = 0; i < N; i++) await send(i, `order ${i}`, `order${i}`);
    })();
    await waitFor("half of the events", () => bodies.length >= N / 2, 60_000, 5);
    // A network failure in the middle: no closing handshake; frames in flight may be lost with the socket.
    await stream.kill();
    const resumeFrom = stream.since;
    assert.ok(resumeFrom);
    stream = new SyncStream(hs.url, { token: bob.accessToken, filter: FILTER, since: resumeFrom, onSync });
    await stream.ready;
    await sending;
    await waitFor("every event", () => bodies.length >= N, 60_000, 10);
    await new Promise((r) => setTimeout(r, 200)); // a duplicate would arrive right behind
    assert.deepEqual(
      bodies,
      Array.from({ length: N }, (_, i) => `order ${i}`),
    );
    await stream.close();
  });

  it("authenticates by header, query parameter or first frame, and refuses bad tokens with 4401", async () => {
    for (const auth of ["header", "query", "message"] as const) {
      const s = new SyncStream(hs.url, { token: bob.accessToken, auth, onSync() {} });
      assert.equal((await s.ready).user_id, bob.userId, auth);
      await s.close();
    }
    for (const auth of ["header", "query", "message"] as const) {
      const s = new SyncStream(hs.url, { token: "not-a-token", auth, onSync() {} });
      const c = await s.closed;
      assert.equal(c.code, CloseCode.unauthorized, `${auth}: ${c.reason}`);
      assert.match(c.reason, /M_UNKNOWN_TOKEN/);
    }
    const malformed = new WebSocket(wsUrl(), { headers: { Authorization: "Basic abc" } });
    assert.equal((await rawClose(malformed)).code, CloseCode.unauthorized);
  });

  it("closes on garbage (4400), binary (1003) and oversized (1009) frames, bad since/filter, and no auth in time", async () => {
    const cases: { what: string; query?: string; send?: (ws: WebSocket) => void; code: number }[] = [
      { what: "non-JSON", send: (ws) => ws.send("{not json"), code: CloseCode.badInput },
      { what: "JSON array", send: (ws) => ws.send("[1,2]"), code: CloseCode.badInput },
      { what: "unknown type", send: (ws) => ws.send('{"type":"subscribe"}'), code: CloseCode.badInput },
      { what: "auth without token", send: (ws) => ws.send('{"type":"auth"}'), code: CloseCode.badInput },
      { what: "binary", send: (ws) => ws.send(Buffer.from([1, 2, 3])), code: CloseCode.unsupportedData },
      { what: "oversized", send: (ws) => ws.send("x".repeat(1024 * 1024)), code: CloseCode.tooBig },
      { what: "bad since", query: "&since=garbage", code: CloseCode.badInput },
      { what: "bad filter", query: "&filter=%7Bnope", code: CloseCode.badInput },
      { what: "unknown filter id", query: "&filter=999999", code: CloseCode.badInput },
    ];
    await Promise.all(
      cases.map(async (c) => {
        const ws = new WebSocket(wsUrl(`?access_token=${enc(bob.accessToken)}${c.query ?? ""}`));
        const closed = rawClose(ws);
        await opened(ws);
        c.send?.(ws);
        assert.equal((await closed).code, c.code, c.what);
      }),
    );
    // No token at all and no auth frame: closed after the auth timeout (5 s).
    const silent = new WebSocket(wsUrl());
    const c = await rawClose(silent);
    assert.equal(c.code, CloseCode.unauthorized);
    // A wrong path is not upgraded.
    const wrong = new WebSocket(`${hs.url.replace(/^http/, "ws")}/_ami/ws/v1/nope`);
    assert.equal((await rawClose(wrong)).code, 1006);
    // The server stayed up, logged no internal error, and counts no leftover connection.
    assert.equal((await api(hs.url, "GET", "/health")).status, 200);
    await waitFor("connections to be released", async () => (await stats()).active_websockets === 0);
    assert.deepEqual(hs.errorLines(), []);
  });

  it("bounds a consumer that stops reading, then lets it catch up or tells it to resync", async () => {
    const big = "y".repeat(30_000);
    const got: string[] = [];
    const onSync = (_nb: string, data: SyncResponse) => {
      for (const e of timelineEvents(data, roomId)) {
        const body = e.content?.body;
        if (e.type === "m.room.message" && typeof body === "string" && body.startsWith("slow "))
          got.push(body.slice(0, 11));
      }
    };
    let stream = new SyncStream(hs.url, { token: bob.accessToken, filter: FILTER, onSync });
    await stream.ready;
    await waitFor("the initial frame", () => stream.since);
    stream.ws.pause(); // stops reading: the kernel buffers fill, then the server's write buffer

    let sent = 0;
    const sendBig = async () => {
      await send(sent, `slow ${String(sent).padStart(6, "0")} ${big}`, `slow${sent}`);
      sent++;
    };
    await waitFor(
      "the server to stop computing for the stalled consumer",
      async () => {
        await sendBig();
        return (await stats()).blocked_websockets === 1;
      },
      60_000,
      0,
    );
    // Bounded: while blocked, more events produce no more frames for it.
    const frames = (await stats()).websocket_frames_total;
    for (let i = 0; i < 20; i++) await sendBig();
    assert.equal((await stats()).websocket_frames_total, frames);
    assert.equal((await stats()).blocked_websockets, 1);

    // Reading again within the slow-consumer window: it catches up with everything, in order.
    stream.ws.resume();
    const expected = () => Array.from({ length: sent }, (_, i) => `slow ${String(i).padStart(6, "0")}`);
    await waitFor("the consumer to catch up", () => got.length >= sent, 60_000);
    assert.deepEqual(got, expected());
    assert.equal((await stats()).blocked_websockets, 0);

    // Stalled for longer than the window (10 s): told to resync and closed with 4408; resuming loses nothing.
    let resync = false;
    const onNotice = (f: Record<string, any>) => {
      if (f.type === "resync") resync = true;
    };
    await stream.close();
    stream = new SyncStream(hs.url, { token: bob.accessToken, filter: FILTER, since: stream.since, onSync, onNotice });
    await stream.ready;
    stream.ws.pause();
    await waitFor(
      "the stream to block again",
      async () => {
        await sendBig();
        return (await stats()).blocked_websockets === 1;
      },
      60_000,
      0,
    );
    await waitFor(
      "the slow consumer to be given up on",
      async () => (await stats()).active_websockets === 0,
      30_000,
      200,
    );
    assert.ok((await stats()).websocket_resyncs_total >= 1);
    stream.ws.resume();
    const c = await stream.closed;
    assert.equal(c.code, CloseCode.tooSlow);
    assert.ok(resync, "the resync notice arrived before the close");
    stream = new SyncStream(hs.url, { token: bob.accessToken, filter: FILTER, since: stream.since, onSync });
    await stream.ready;
    await waitFor("the resumed stream to catch up", () => got.length >= sent, 60_000);
    assert.deepEqual(got, expected());
    await stream.close();
    assert.deepEqual(hs.errorLines(), []);
  });
});
