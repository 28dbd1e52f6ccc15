/**
 * The WebSocket hub's fast path (src/matrix/service/sync/fast.ts) builds frames from room slices shared by
 * every connection; each frame must equal what GET /sync returns for the same `since` token and filter. Plain
 * messages (from others and from the syncing device itself, in one room and in several), a state change (the
 * full computation) and a mention (unread highlight counts) are compared, with and without lazy-loading, and
 * for two users whose frames are serialised once for both.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { SyncResponse } from "../../src/matrix/service/sync/types.ts";
import { SyncStream, timelineEvents } from "../../src/matrix/websocket/client.ts";
import type { WsHub } from "../../src/matrix/websocket/hub.ts";
import { enc, ok, registerUser, type Session, waitFor } from "./helpers/client.ts";
import { ownWsHub, startInProcess } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const FILTERS = {
  lazy: JSON.stringify({ room: { timeline: { limit: 20 }, state: { lazy_load_members: true } } }),
  plain: JSON.stringify({ room: { timeline: { limit: 50 } } }),
  /** Same filter as `plain`: the two connections share slices and, mostly, one serialised frame. */
  plain2: JSON.stringify({ room: { timeline: { limit: 50 } } }),
  fields: JSON.stringify({ event_fields: ["type", "content", "sender", "event_id", "unsigned"] }),
  /** Per-thread unread counts: always the full computation (its frames are compared all the same). */
  threads: JSON.stringify({ room: { timeline: { limit: 50, unread_thread_notifications: true } } }),
};
/** Watchers whose frames come from the fast path. */
const FAST = 4;

/** unsigned.age is the time since the event was sent: it differs between any two computations. */
function withoutAge(v: any): any {
  if (Array.isArray(v)) return v.map(withoutAge);
  if (v === null || typeof v !== "object") return v;
  const out: Record<string, any> = {};
  for (const [k, x] of Object.entries(v)) if (k !== "age") out[k] = withoutAge(x);
  return out;
}

interface Frame {
  prev: string;
  next: string;
  data: SyncResponse;
}

describe("WebSocket fast path", () => {
  let hs: Awaited<ReturnType<typeof startInProcess>>;
  let own: Awaited<ReturnType<typeof ownWsHub>> | undefined;
  let hub: WsHub;
  let wsBase = "";
  let alice: Session;
  let carol: Session;
  const watchers: { name: keyof typeof FILTERS; s: Session; stream?: SyncStream; frames: Frame[] }[] = [];
  let room1 = "";
  let room2 = "";
  /** Joined long before the watchers connect: the lazy-loading watcher does not have his member event. */
  let late: Session;

  before(async () => {
    hs = await startInProcess();
    // A hub of our own on a second listener, so the test can read its fast-path counter.
    own = await ownWsHub(hs);
    ({ hub, wsBase } = own);
    [alice, carol] = await Promise.all([registerUser(hs.url, "fa_alice"), registerUser(hs.url, "fa_carol")]);
    const make = () =>
      ok(hs.url, "POST", `${C}/createRoom`, { token: alice.accessToken, body: { preset: "public_chat" } });
    room1 = (await make()).room_id;
    room2 = (await make()).room_id;
    await ok(hs.url, "POST", `${C}/join/${enc(room1)}`, { token: carol.accessToken, body: {} });
    for (const name of Object.keys(FILTERS) as (keyof typeof FILTERS)[]) {
      const s = await registerUser(hs.url, `fa_${name}`);
      for (const r of [room1, room2])
        await ok(hs.url, "POST", `${C}/join/${enc(r)}`, { token: s.accessToken, body: {} });
      watchers.push({ name, s, frames: [] });
    }
    // late joins after everyone (not a hero of anyone), and 25 messages push his join out of every initial
    // timeline window (the lazy filter's limit is 20).
    late = await registerUser(hs.url, "fa_late");
    await ok(hs.url, "POST", `${C}/join/${enc(room1)}`, { token: late.accessToken, body: {} });
    for (let i = 0; i < 25; i++) await send(alice, room1, `filler ${i}`, `filler${i}`);
  });
  after(async () => {
    for (const w of watchers) await w.stream?.close();
    await own?.close();
    await hs?.dispose();
  });

  const send = (who: Session, roomId: string, body: string, txn: string) =>
    ok(hs.url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/${txn}`, {
      token: who.accessToken,
      body: { msgtype: "m.text", body },
    });

  /** Every watcher saw `body`; then each new frame is compared with /sync from the same token. */
  async function settle(bodies: string[]): Promise<number> {
    let compared = 0;
    for (const w of watchers) {
      await waitFor(`${w.name} to receive ${bodies.join(", ")}`, () => {
        const seen = w.frames.flatMap((f) => timelineEvents(f.data).map((e) => e.content?.body));
        return bodies.every((b) => seen.includes(b));
      });
    }
    for (const w of watchers) {
      for (const f of w.frames.splice(0)) {
        const path = `${C}/sync?since=${enc(f.prev)}&filter=${enc(FILTERS[w.name])}&timeout=0&set_presence=offline`;
        const sync = await ok(hs.url, "GET", path, { token: w.s.accessToken });
        if (sync.next_batch !== f.next) continue; // the stream moved on meanwhile: not the same snapshot
        assert.deepEqual(withoutAge(f.data), withoutAge(sync), `${w.name}: frame after ${f.prev} differs from /sync`);
        compared++;
      }
    }
    return compared;
  }

  it("sends frames equal to /sync's for the same tokens", async () => {
    for (const w of watchers) {
      let prev = "";
      w.stream = new SyncStream(wsBase, {
        token: w.s.accessToken,
        filter: FILTERS[w.name],
        onSync(next, data) {
          if (prev) w.frames.push({ prev, next, data });
          prev = next;
        },
      });
      await w.stream.ready;
      await waitFor(`${w.name}'s first frame`, () => prev);
    }
    const fast0 = hub.fastFrames;
    let compared = 0;
    await send(alice, room1, "one", "t1");
    compared += await settle(["one"]);
    // Each watcher's own send: its frame carries its transaction_id, the others' do not.
    for (const w of watchers) await send(w.s, room1, `own ${w.name}`, `own-${w.name}`);
    compared += await settle(watchers.map((w) => `own ${w.name}`));
    await Promise.all([send(carol, room1, "two rooms a", "t2"), send(alice, room2, "two rooms b", "t3")]);
    compared += await settle(["two rooms a", "two rooms b"]);
    const fastSoFar = hub.fastFrames - fast0;
    assert.ok(fastSoFar >= FAST * 3, `expected fast-path frames, got ${fastSoFar}`);
    assert.ok(hub.sharedFrames > 0, "plain and plain2 shared serialised frames");

    // A state change takes the full computation; what follows is fast again.
    await ok(hs.url, "PUT", `${C}/rooms/${enc(room1)}/state/m.room.topic/`, {
      token: alice.accessToken,
      body: { topic: "changed" },
    });
    await send(alice, room1, "after state", "t4");
    compared += await settle(["after state"]);
    const mention = watchers.map((w) => w.s.userId).join(" ");
    const before = hub.fastFrames;
    await send(carol, room1, `hello ${mention}`, "t5");
    compared += await settle([`hello ${mention}`]);
    assert.ok(hub.fastFrames > before, "the mention went through the fast path");
    // A sender the lazy-loading device has no member event of: the fast path adds it to the state, as /sync does.
    const lazyBefore = hub.fastFrames;
    await send(late, room1, "late speaks", "t6");
    const lazy = watchers.find((w) => w.name === "lazy")!;
    await waitFor("late's message", () => lazy.frames.some((f) => JSON.stringify(f.data).includes("late speaks")));
    const lazyFrame = lazy.frames.find((f) => JSON.stringify(f.data).includes("late speaks"))!;
    const state = lazyFrame.data.rooms.join[room1].state.events;
    assert.ok(
      state.some((e: any) => e.type === "m.room.member" && e.state_key === late.userId),
      "late's member event",
    );
    compared += await settle(["late speaks"]);
    assert.ok(hub.fastFrames - lazyBefore >= FAST, "the frames with a lazy member came from the fast path");
    // A thread: its root and, later, a reply (the root's summary is per user: the full computation's).
    const root = (await send(alice, room1, "thread root", "t7")).event_id;
    compared += await settle(["thread root"]);
    await ok(hs.url, "PUT", `${C}/rooms/${enc(room1)}/send/m.room.message/t8`, {
      token: carol.accessToken,
      body: { msgtype: "m.text", body: "thread reply", "m.relates_to": { rel_type: "m.thread", event_id: root } },
    });
    compared += await settle(["thread reply"]);
    assert.ok(compared >= watchers.length * 8, `compared ${compared} frames`);
  });
});
