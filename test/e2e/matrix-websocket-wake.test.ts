/**
 * The WebSocket hub wakes exactly the connections that can receive a change (src/matrix/websocket/affects.ts):
 * a presence change wakes those sharing a room with the user whose filter takes presence; a to-device message
 * only its recipient; a receipt the room's members whose filter takes receipts; nobody is woken by the presence
 * of a user they share no room with. Connections that were not woken still get the change-free fast path next,
 * and those frames equal /sync's for the same token; the woken ones receive what /sync delivers.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SyncStream } from "../../src/matrix/websocket/client.ts";
import type { WsHub } from "../../src/matrix/websocket/hub.ts";
import { enc, ok, registerUser, type Session, waitFor } from "./helpers/client.ts";
import { ownWsHub, startInProcess } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const FILTERS = {
  /** Takes everything (presence, receipts). */
  all: JSON.stringify({ room: { timeline: { limit: 20 } } }),
  /** No presence, no ephemeral events: presence changes and receipts are nothing to it. */
  quiet: JSON.stringify({ presence: { types: [] }, room: { timeline: { limit: 20 }, ephemeral: { types: [] } } }),
};

interface Watcher {
  s: Session;
  filter: string;
  stream?: SyncStream;
  frames: { prev: string; next: string; data: Record<string, any> }[];
}

describe("WebSocket wake-ups", () => {
  let hs: Awaited<ReturnType<typeof startInProcess>>;
  let own: Awaited<ReturnType<typeof ownWsHub>> | undefined;
  let hub: WsHub;
  let wsBase = "";
  let alice: Session;
  let roomId = "";
  /** bob and eve share alice's room; dave shares no room with anyone. */
  const w: Record<"bob" | "eve" | "dave", Watcher> = {} as any;

  before(async () => {
    hs = await startInProcess();
    own = await ownWsHub(hs);
    ({ hub, wsBase } = own);
    alice = await registerUser(hs.url, "wk_alice");
    roomId = (
      await ok(hs.url, "POST", `${C}/createRoom`, { token: alice.accessToken, body: { preset: "public_chat" } })
    ).room_id;
    for (const [name, filter] of [
      ["bob", FILTERS.all],
      ["eve", FILTERS.quiet],
      ["dave", FILTERS.all],
    ] as const) {
      const s = await registerUser(hs.url, `wk_${name}`);
      if (name !== "dave") await ok(hs.url, "POST", `${C}/join/${enc(roomId)}`, { token: s.accessToken, body: {} });
      w[name] = { s, filter, frames: [] };
    }
    for (const x of Object.values(w)) {
      let prev = "";
      x.stream = new SyncStream(wsBase, {
        token: x.s.accessToken,
        filter: x.filter,
        onSync(next, data) {
          if (prev) x.frames.push({ prev, next, data });
          prev = next;
        },
      });
      await x.stream.ready;
      await waitFor("the first frame", () => prev);
    }
    // Every connection is up to date (their own connects' presence writes included).
    await waitFor("the streams to settle", () => Object.values(w).every((x) => x.stream?.since));
  });
  after(async () => {
    for (const x of Object.values(w)) await x.stream?.close();
    await own?.close();
    await hs?.dispose();
  });

  /** Run `act`, wait until `who` got a frame matching `seen`, and return how many wake-ups happened. */
  async function wakeUpsFor(act: () => Promise<unknown>, who: Watcher, seen: (d: Record<string, any>) => boolean) {
    const before = hub.wakeUps;
    await act();
    await waitFor("the frame", () => who.frames.some((f) => seen(f.data)));
    return hub.wakeUps - before;
  }

  it("wakes only connections that can receive a presence change, a to-device message or a receipt", async () => {
    for (const x of Object.values(w)) x.frames.length = 0;
    // alice's presence: bob shares the room and takes presence; eve filters it out; dave shares no room.
    const presence = await wakeUpsFor(
      () =>
        ok(hs.url, "PUT", `${C}/presence/${enc(alice.userId)}/status`, {
          token: alice.accessToken,
          body: { presence: "unavailable", status_msg: "away" },
        }),
      w.bob,
      (d) => d.presence?.events?.some((e: any) => e.sender === alice.userId && e.content.presence === "unavailable"),
    );
    assert.equal(presence, 1, "only bob's connection woke for alice's presence");

    const toDevice = await wakeUpsFor(
      () =>
        ok(hs.url, "PUT", `${C}/sendToDevice/m.test/wk1`, {
          token: alice.accessToken,
          body: { messages: { [w.dave.s.userId]: { [w.dave.s.deviceId]: { n: 1 } } } },
        }),
      w.dave,
      (d) => d.to_device?.events?.some((e: any) => e.type === "m.test" && e.content.n === 1),
    );
    assert.equal(toDevice, 1, "only dave's connection woke for his to-device message");

    const sent = await ok(hs.url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/wk2`, {
      token: alice.accessToken,
      body: { msgtype: "m.text", body: "read me" },
    });
    await waitFor("eve's message", () => w.eve.frames.some((f) => JSON.stringify(f.data).includes("read me")));
    const receipt = await wakeUpsFor(
      () =>
        ok(hs.url, "POST", `${C}/rooms/${enc(roomId)}/receipt/m.read/${enc(sent.event_id)}`, {
          token: alice.accessToken,
          body: {},
        }),
      w.bob,
      (d) => d.rooms?.join?.[roomId]?.ephemeral?.events?.some((e: any) => e.type === "m.receipt"),
    );
    assert.equal(receipt, 1, "only bob's connection woke for the receipt (eve filters receipts out)");

    // Nothing reached eve or dave that they could not receive.
    assert.ok(!w.eve.frames.some((f) => f.data.presence?.events?.length || f.data.to_device?.events?.length));
    assert.ok(!w.dave.frames.some((f) => f.data.presence?.events?.length || f.data.rooms?.join?.[roomId]));
  });

  it("steps over changes a connection cannot receive on the fast path, with frames equal to /sync's", async () => {
    for (const x of Object.values(w)) x.frames.length = 0;
    // dave's presence (he shares no room) and a to-device message to dave: nothing for bob or eve.
    await ok(hs.url, "PUT", `${C}/presence/${enc(w.dave.s.userId)}/status`, {
      token: w.dave.s.accessToken,
      body: { presence: "unavailable" },
    });
    await ok(hs.url, "PUT", `${C}/sendToDevice/m.test/wk3`, {
      token: alice.accessToken,
      body: { messages: { [w.dave.s.userId]: { [w.dave.s.deviceId]: { n: 2 } } } },
    });
    const fast0 = hub.fastFrames;
    await ok(hs.url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/wk4`, {
      token: alice.accessToken,
      body: { msgtype: "m.text", body: "after others' changes" },
    });
    let compared = 0;
    for (const name of ["bob", "eve"] as const) {
      const x = w[name];
      await waitFor(`${name}'s frame`, () => x.frames.some((f) => JSON.stringify(f.data).includes("after others'")));
      for (const f of x.frames) {
        const path = `${C}/sync?since=${enc(f.prev)}&filter=${enc(x.filter)}&timeout=0&set_presence=offline`;
        const sync = await ok(hs.url, "GET", path, { token: x.s.accessToken });
        if (sync.next_batch !== f.next) continue;
        const strip = (v: any) =>
          JSON.parse(JSON.stringify(v, (k, val) => (k === "age" || k === "last_active_ago" ? undefined : val)));
        assert.deepEqual(strip(f.data), strip(sync), `${name}: frame after ${f.prev} differs from /sync`);
        compared++;
      }
    }
    assert.ok(compared >= 2, `compared ${compared} frames`);
    assert.ok(hub.fastFrames - fast0 >= 2, "bob's and eve's frames came from the fast path");
  });
});
