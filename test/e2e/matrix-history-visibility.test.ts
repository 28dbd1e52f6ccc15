/**
 * History visibility as the spec's "Server behaviour" says, seen by real clients: for every setting (joined,
 * invited, shared, world_readable) and every membership story (invite, join, leave, kick, ban, unban, a rejected
 * invite, rejoins, the setting changed mid-history), the reader sees exactly the messages the table names on every
 * read path: matrix-js-sdk's incremental /sync while it happens, a fresh initial /sync, /messages backwards
 * (SDK scrollback) and forwards, /context, /event, and the WebSocket stream.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  ClientEvent,
  Direction,
  EventType,
  Filter,
  type MatrixClient,
  type MatrixEvent,
  Method,
  PendingEventOrdering,
  RoomEvent,
} from "matrix-js-sdk";
import { SyncStream, timelineEvents } from "../../src/matrix/websocket/client.ts";
import { api, enc, ok, registerUser, type Session, sdkClient, waitFor } from "./helpers/client.ts";
import { BACKENDS, ChildHomeserver } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const SETTINGS = ["joined", "invited", "shared", "world_readable"] as const;
type Setting = (typeof SETTINGS)[number];

/**
 * One story, told in a room whose history_visibility starts as each setting. "m" is a message from the room's
 * creator (numbered 1, 2, ... in order); the others are the reader's membership changes (kick, ban, unban and
 * invite done by the creator) and "hv:<value>" a visibility change. Every story ends with the reader joined.
 */
interface Row {
  name: string;
  steps: string[];
  visible: Record<Setting, number[]>;
}

const all = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const ROWS: Row[] = [
  {
    name: "invited, then joins",
    steps: ["m", "invite", "m", "join", "m"],
    visible: { joined: [3], invited: [2, 3], shared: all(3), world_readable: all(3) },
  },
  {
    name: "joins, leaves, rejoins",
    steps: ["join", "m", "leave", "m", "join", "m"],
    visible: { joined: [1, 3], invited: [1, 3], shared: all(3), world_readable: all(3) },
  },
  {
    name: "kicked, rejoins",
    steps: ["join", "m", "kick", "m", "join", "m"],
    visible: { joined: [1, 3], invited: [1, 3], shared: all(3), world_readable: all(3) },
  },
  {
    name: "banned, unbanned, invited, rejoins",
    steps: ["join", "m", "ban", "m", "unban", "m", "invite", "m", "join", "m"],
    visible: { joined: [1, 5], invited: [1, 4, 5], shared: all(5), world_readable: all(5) },
  },
  {
    name: "rejects an invite, joins later",
    steps: ["m", "invite", "m", "leave", "m", "join", "m"],
    visible: { joined: [4], invited: [2, 4], shared: all(4), world_readable: all(4) },
  },
  {
    name: "setting opened to shared before the join",
    steps: ["m", "hv:shared", "m", "join", "m"],
    visible: { joined: [2, 3], invited: [2, 3], shared: all(3), world_readable: all(3) },
  },
  {
    name: "setting opened to world_readable before the join",
    steps: ["m", "hv:world_readable", "m", "join", "m"],
    visible: { joined: [2, 3], invited: [2, 3], shared: all(3), world_readable: all(3) },
  },
  {
    name: "setting closed to joined while away",
    steps: ["join", "m", "leave", "m", "hv:joined", "m", "join", "m"],
    visible: { joined: [1, 4], invited: [1, 4], shared: [1, 2, 4], world_readable: [1, 2, 4] },
  },
];

const bodyOf = (e: MatrixEvent) => (e.getType() === EventType.RoomMessage ? String(e.getContent().body) : null);
/** The message numbers among event bodies "m<N> <tag>", in the order given. */
const numbers = (bodies: (string | null | undefined)[]) =>
  bodies.flatMap((b) => (b && /^m\d+ /.test(b) ? [Number(b.slice(1, b.indexOf(" ")))] : []));
const sorted = (xs: Iterable<number>) => [...new Set(xs)].sort((a, b) => a - b);
/** Timelines long enough that no sync of a story is `limited` (a rejoin resends the room from its beginning). */
const TIMELINE = { room: { timeline: { limit: 50 } } };

for (const backend of BACKENDS) {
  describe(`history visibility (${backend})`, () => {
    let hs: ChildHomeserver;
    let alice: Session;
    let n = 0;
    const clients: MatrixClient[] = [];
    const streams: SyncStream[] = [];

    const call = (s: Session, method: string, path: string, body?: unknown) =>
      ok(hs.url, method, `${C}${path}`, { token: s.accessToken, ...(body === undefined ? {} : { body }) });

    /** An SDK client that has finished its first sync; `initialSyncLimit` bounds the timeline of each room. */
    async function syncing(s: Session, initialSyncLimit = 50): Promise<MatrixClient> {
      const c = sdkClient(hs.url, s);
      clients.push(c);
      const filter = new Filter(s.userId);
      filter.setDefinition(structuredClone(TIMELINE)); // the SDK edits the definition it is given
      const first = new Promise<void>((resolve) => c.once(ClientEvent.Sync, () => resolve()));
      await c.startClient({ initialSyncLimit, filter, pendingEventOrdering: PendingEventOrdering.Detached });
      await first;
      return c;
    }

    async function newRoom(setting: Setting, preset = "public_chat"): Promise<string> {
      const initial_state = [
        { type: "m.room.history_visibility", state_key: "", content: { history_visibility: setting } },
      ];
      return (await call(alice, "POST", "/createRoom", { preset, initial_state })).room_id;
    }
    const say = async (roomId: string, body: string) =>
      (await call(alice, "PUT", `/rooms/${enc(roomId)}/send/m.room.message/t${++n}`, { msgtype: "m.text", body }))
        .event_id as string;
    const messages = async (s: Session, roomId: string, query = "dir=b&limit=100") =>
      numbers((await call(s, "GET", `/rooms/${enc(roomId)}/messages?${query}`)).chunk.map((e: any) => e.content?.body));

    before(async () => {
      hs = await ChildHomeserver.start({ backend });
      alice = await registerUser(hs.url, "hvalice");
    });
    after(async () => {
      for (const c of clients) c.stopClient();
      for (const s of streams) await s.close();
      const errors = hs?.errorLines() ?? [];
      await hs?.dispose();
      assert.deepEqual(errors, [], "the homeserver logged internal errors");
    });

    for (const row of ROWS) {
      for (const setting of SETTINGS) {
        it(`${row.name}, history_visibility ${setting}`, async () => {
          const want = row.visible[setting];
          const bob = await registerUser(hs.url, `hvbob${++n}`);
          const roomId = await newRoom(setting);

          // Live readers from before the story: the SDK's incremental /sync and the WebSocket stream.
          const live = await syncing(bob);
          const liveSeen = new Set<number>();
          live.on(RoomEvent.Timeline, (e, room) => {
            if (room?.roomId === roomId) for (const k of numbers([bodyOf(e)])) liveSeen.add(k);
          });
          const wsSeen = new Set<number>();
          const stream = new SyncStream(hs.url, {
            token: bob.accessToken,
            filter: JSON.stringify(TIMELINE),
            onSync: (_nb, data) => {
              for (const k of numbers(timelineEvents(data, roomId).map((e) => e.content?.body as string | undefined)))
                wsSeen.add(k);
            },
          });
          streams.push(stream);
          await stream.ready;

          // The story.
          const ids: string[] = [];
          for (const step of row.steps) {
            const r = `/rooms/${enc(roomId)}`;
            if (step === "m") {
              const body = `m${ids.length + 1} ${row.name}`;
              const sent = await call(alice, "PUT", `${r}/send/m.room.message/t${n}.${ids.length}`, {
                msgtype: "m.text",
                body,
              });
              ids.push(sent.event_id);
            } else if (step === "join") await call(bob, "POST", `${r}/join`, {});
            else if (step === "leave") await call(bob, "POST", `${r}/leave`, {});
            else if (["invite", "kick", "ban", "unban"].includes(step))
              await call(alice, "POST", `${r}/${step}`, { user_id: bob.userId });
            else if (step.startsWith("hv:"))
              await call(alice, "PUT", `${r}/state/m.room.history_visibility/`, { history_visibility: step.slice(3) });
            else throw new Error(`unknown step ${step}`);
          }
          const last = ids.length;

          // Incremental /sync and the WebSocket stream: everything visible arrived, nothing else.
          await waitFor("the last message on /sync", () => liveSeen.has(last));
          await waitFor("the last message on the WebSocket", () => wsSeen.has(last));
          await new Promise((r) => setTimeout(r, 100));
          assert.deepEqual(sorted(liveSeen), want, "incremental /sync (matrix-js-sdk)");
          assert.deepEqual(sorted(wsSeen), want, "WebSocket stream");

          // A fresh initial /sync carries it all in its timeline, in order.
          const fresh = await syncing(bob);
          const room = await waitFor("the room", () => fresh.getRoom(roomId));
          assert.deepEqual(numbers(room.getLiveTimeline().getEvents().map(bodyOf)), want, "initial /sync");

          // /messages backwards: an initial sync of one event, then the SDK's scrollback two at a time.
          const paging = await syncing(bob, 1);
          const proom = await waitFor("the room", () => paging.getRoom(roomId));
          for (let i = 0; i < 50 && proom.getLiveTimeline().getPaginationToken(Direction.Backward); i++)
            await paging.scrollback(proom, 2);
          assert.deepEqual(numbers(proom.getLiveTimeline().getEvents().map(bodyOf)), want, "/messages dir=b");

          // /messages forwards from the beginning, two at a time.
          const forward: number[] = [];
          let from: string | undefined = "t0";
          for (let i = 0; i < 50 && from; i++) {
            const page = await paging.createMessagesRequest(roomId, from, 2, Direction.Forward);
            forward.push(...numbers(page.chunk.map((e) => e.content?.body)));
            from = page.end;
          }
          assert.deepEqual(forward, want, "/messages dir=f");

          // /event and /context of every message: the visible ones and what surrounds them, the others not found.
          for (const [i, eventId] of ids.entries()) {
            const k = i + 1;
            const path = `/rooms/${enc(roomId)}`;
            if (want.includes(k)) {
              const ev = await paging.fetchRoomEvent(roomId, eventId);
              assert.deepEqual(numbers([ev.content?.body]), [k], `/event m${k}`);
              const ctx: any = await paging.http.authedRequest(Method.Get, `${path}/context/${enc(eventId)}`, {
                limit: "40",
              });
              const around = [...ctx.events_before].reverse().concat([ctx.event], ctx.events_after);
              assert.deepEqual(numbers(around.map((e: any) => e.content?.body)), want, `/context m${k}`);
            } else {
              await assert.rejects(paging.fetchRoomEvent(roomId, eventId), { errcode: "M_NOT_FOUND" }, `/event m${k}`);
              await assert.rejects(
                paging.http.authedRequest(Method.Get, `${path}/context/${enc(eventId)}`),
                { errcode: "M_NOT_FOUND" },
                `/context m${k}`,
              );
            }
          }
          for (const c of [live, fresh, paging]) c.stopClient();
          await stream.close();
        });
      }
    }

    it("accepting an invite into a shared room: the next sync is limited, with earlier history and prev_batch", async () => {
      const bob = await registerUser(hs.url, `hvbob${++n}`);
      const roomId = await newRoom("shared", "private_chat");
      for (let i = 1; i <= 8; i++) await say(roomId, `m${i} before the invite`);
      const f = `filter=${enc(JSON.stringify({ room: { timeline: { limit: 5 } } }))}`;
      const s0 = await call(bob, "GET", `/sync?${f}`);
      // matrix-js-sdk, as Element runs it: the invite arrives, the user accepts, the room shows its history at once.
      const sdk = await syncing(bob);
      await call(alice, "POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
      const s1 = await call(bob, "GET", `/sync?${f}&since=${s0.next_batch}`);
      assert.ok(s1.rooms.invite[roomId], "the invite");
      await waitFor("the invite in the SDK", () => sdk.getRoom(roomId)?.getMyMembership() === "invite");
      await sdk.joinRoom(roomId);

      const s2 = await call(bob, "GET", `/sync?${f}&since=${s1.next_batch}`);
      const room = s2.rooms.join[roomId];
      assert.equal(room.timeline.limited, true);
      assert.deepEqual(numbers(room.timeline.events.map((e: any) => e.content?.body)), [6, 7, 8]);
      assert.equal(room.timeline.events.at(-1).content.membership, "join");
      assert.ok(
        room.state.events.some((e: any) => e.type === "m.room.create"),
        "the state before the timeline",
      );
      assert.ok(room.timeline.prev_batch, "prev_batch");
      const earlier = await messages(bob, roomId, `dir=b&limit=100&from=${enc(room.timeline.prev_batch)}`);
      assert.deepEqual(earlier, [5, 4, 3, 2, 1], "/messages from prev_batch continues the history");

      const r = await waitFor("the joined room", () => sdk.getRoom(roomId));
      await waitFor("the history in the SDK's timeline", () => {
        const seen = numbers(r.getLiveTimeline().getEvents().map(bodyOf));
        return seen.length === 8 && seen.every((k, i) => k === i + 1);
      });
      sdk.stopClient();
    });

    it("state changed while the reader was away reaches their clients, the hidden messages do not", async () => {
      const bob = await registerUser(hs.url, `hvbob${++n}`);
      const roomId = await newRoom("joined");
      const live = await syncing(bob);
      await call(bob, "POST", `/rooms/${enc(roomId)}/join`, {});
      await say(roomId, "m1 while joined");
      await call(bob, "POST", `/rooms/${enc(roomId)}/leave`, {});
      await call(alice, "PUT", `/rooms/${enc(roomId)}/state/m.room.name/`, { name: "named while away" });
      await say(roomId, "m2 while away");
      await call(bob, "POST", `/rooms/${enc(roomId)}/join`, {});
      await say(roomId, "m3 after the rejoin");
      const fresh = await syncing(bob);
      for (const [what, c] of [
        ["incremental /sync", live],
        ["initial /sync", fresh],
      ] as const) {
        const room = await waitFor(`${what}: the rejoined room`, () => {
          const r = c.getRoom(roomId);
          return r && numbers(r.getLiveTimeline().getEvents().map(bodyOf)).includes(3) ? r : null;
        });
        assert.equal(room.name, "named while away", what);
        assert.ok(!numbers(room.getLiveTimeline().getEvents().map(bodyOf)).includes(2), what);
      }
      live.stopClient();
      fresh.stopClient();
    });

    it("a reader who left for good keeps what they could see, up to their leave", async () => {
      for (const setting of SETTINGS) {
        const bob = await registerUser(hs.url, `hvbob${++n}`);
        const roomId = await newRoom(setting);
        await call(bob, "POST", `/rooms/${enc(roomId)}/join`, {});
        await say(roomId, "m1 while joined");
        await call(bob, "POST", `/rooms/${enc(roomId)}/leave`, {});
        const m2 = await say(roomId, "m2 after the leave");
        const after = setting === "world_readable" ? [2, 1] : [1];
        assert.deepEqual(await messages(bob, roomId), after, `/messages, ${setting}`);
        const ev = await api(hs.url, "GET", `${C}/rooms/${enc(roomId)}/event/${enc(m2)}`, { token: bob.accessToken });
        assert.equal(ev.status, setting === "world_readable" ? 200 : 404, `/event m2, ${setting}`);
        const sync = await call(bob, "GET", `/sync?filter=${enc(JSON.stringify({ room: { include_leave: true } }))}`);
        const left = sync.rooms.leave[roomId].timeline.events;
        assert.deepEqual(numbers(left.map((e: any) => e.content?.body)), [1], `/sync leave section, ${setting}`);
        assert.equal(left.at(-1).content.membership, "leave");
      }
    });

    it("a non-member reads only what was sent while the room was world_readable", async () => {
      const carol = await registerUser(hs.url, `hvcarol${++n}`);
      const roomId = await newRoom("joined");
      const m1 = await say(roomId, "m1 joined only");
      await call(alice, "PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, {
        history_visibility: "world_readable",
      });
      const m2 = await say(roomId, "m2 world readable");
      assert.deepEqual(await messages(carol, roomId), [2]);
      assert.deepEqual(await messages(carol, roomId, "dir=f&limit=100"), [2]);
      const get = (id: string) =>
        api(hs.url, "GET", `${C}/rooms/${enc(roomId)}/event/${enc(id)}`, { token: carol.accessToken });
      assert.equal((await get(m1)).status, 404);
      assert.equal((await get(m2)).status, 200);
      await call(alice, "PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, {
        history_visibility: "joined",
      });
      await say(roomId, "m3 joined only");
      const r = await api(hs.url, "GET", `${C}/rooms/${enc(roomId)}/messages?dir=b`, { token: carol.accessToken });
      assert.equal(r.status, 403);
      assert.equal(r.json.errcode, "M_FORBIDDEN");
    });
  });
}
