/**
 * Crash safety: kill -9 the homeserver in the middle of a send load (20 concurrent senders); after a restart
 * every event whose send was answered 200 is present (by ID and in /messages), resending an in-flight txnId
 * never duplicates, and the server starts cleanly. Two crash rounds, on SQLite and on PostgreSQL.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { api, enc, ok, registerUser, type Session, waitFor } from "./helpers/client.ts";
import { BACKENDS, ChildHomeserver } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const SENDERS = 20;
const ROOMS = 4;

interface Acked {
  roomId: string;
  eventId: string;
  body: string;
}

interface Attempt {
  sender: Session;
  roomId: string;
  txnId: string;
  body: string;
}

/** Run the senders until `stop` resolves; collect acked sends and sends whose outcome is unknown. */
async function sendLoad(
  url: string,
  senders: { s: Session; roomId: string }[],
  stop: Promise<void>,
  acked: Acked[],
  unknown: Attempt[],
  tag: string,
): Promise<void> {
  let stopped = false;
  void stop.then(() => {
    stopped = true;
  });
  await Promise.all(
    senders.map(async ({ s, roomId }, n) => {
      for (let i = 0; !stopped; i++) {
        const a: Attempt = {
          sender: s,
          roomId,
          txnId: `crash-${randomBytes(6).toString("hex")}`,
          body: `${tag} sender ${n} msg ${i}`,
        };
        try {
          const r = await api(url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/${a.txnId}`, {
            token: s.accessToken,
            body: { msgtype: "m.text", body: a.body },
          });
          if (r.status === 200) acked.push({ roomId, eventId: r.json.event_id, body: a.body });
          else throw new Error(`send answered ${r.status}: ${r.text}`);
        } catch (e) {
          if ((e as Error).message.startsWith("send answered")) throw e;
          unknown.push(a); // connection reset by the kill: outcome unknown
          return;
        }
      }
    }),
  );
}

/** Every event ID of a room, oldest first, through /messages forward pagination. */
async function allEventIds(url: string, token: string, roomId: string): Promise<string[]> {
  const ids: string[] = [];
  let from = "";
  for (let guard = 0; guard < 10_000; guard++) {
    const page = await ok(
      url,
      "GET",
      `${C}/rooms/${enc(roomId)}/messages?dir=f&limit=500${from ? `&from=${enc(from)}` : ""}`,
      { token },
    );
    for (const e of page.chunk) ids.push(e.event_id);
    if (!page.end || page.chunk.length === 0) return ids;
    from = page.end;
  }
  throw new Error("pagination did not end");
}

for (const backend of BACKENDS) {
  describe(`crash safety: kill -9 during a send load (${backend})`, () => {
    let hs: ChildHomeserver;
    let owner: Session;
    const rooms: string[] = [];
    const senders: { s: Session; roomId: string }[] = [];
    const acked: Acked[] = [];
    const unknown: Attempt[] = [];

    before(async () => {
      hs = await ChildHomeserver.start({ backend });
      const tag = randomBytes(3).toString("hex");
      owner = await registerUser(hs.url, `owner${tag}`);
      for (let r = 0; r < ROOMS; r++) {
        rooms.push(
          (await ok(hs.url, "POST", `${C}/createRoom`, { token: owner.accessToken, body: { preset: "public_chat" } }))
            .room_id,
        );
      }
      for (let i = 0; i < SENDERS; i++) {
        const s = await registerUser(hs.url, `s${i}x${tag}`);
        const roomId = rooms[i % ROOMS];
        await ok(hs.url, "POST", `${C}/join/${enc(roomId)}`, { token: s.accessToken, body: {} });
        senders.push({ s, roomId });
      }
    });
    after(async () => {
      await hs?.dispose();
    });

    for (const round of [1, 2]) {
      it(`round ${round}: the server is killed while ${SENDERS} senders send, and restarts cleanly`, async () => {
        const logStart = hs.logLines.length;
        let killed!: () => void;
        const stop = new Promise<void>((r) => {
          killed = r;
        });
        const before = acked.length;
        const load = sendLoad(hs.url, senders, stop, acked, unknown, `round ${round}`);
        // Kill once a good number of sends were acknowledged, so the kill lands mid-stream.
        let loadError: unknown;
        load.catch((e) => {
          loadError = e;
        });
        await waitFor(
          "200 acknowledged sends",
          () => {
            if (loadError) throw loadError;
            return acked.length - before >= 200;
          },
          60_000,
          5,
        );
        await hs.kill();
        killed();
        await load;
        assert.ok(acked.length - before >= 200);
        await hs.start();
        const v = await ok(hs.url, "GET", "/_matrix/client/versions");
        assert.ok(Array.isArray(v.versions));
        assert.deepEqual(
          hs.logLines.slice(logStart).filter((l) => l.includes('"level":"error"')),
          [],
          "clean start",
        );
      });
    }

    it("every event answered 200 before a kill is present by ID and in /messages", async () => {
      assert.ok(acked.length > 100);
      const missing: string[] = [];
      for (const a of acked) {
        const r = await api(hs.url, "GET", `${C}/rooms/${enc(a.roomId)}/event/${enc(a.eventId)}`, {
          token: owner.accessToken,
        });
        if (r.status !== 200 || r.json?.content?.body !== a.body) missing.push(`${a.eventId} (${r.status})`);
      }
      assert.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged events lost`);
      for (const roomId of rooms) {
        const ids = new Set(await allEventIds(hs.url, owner.accessToken, roomId));
        const lost = acked.filter((a) => a.roomId === roomId && !ids.has(a.eventId));
        assert.deepEqual(lost, [], `acknowledged events missing from /messages of ${roomId}`);
      }
    });

    it("resending an in-flight transaction ID after the crash never duplicates the event", async () => {
      const retries = unknown.slice(0, 40);
      for (const a of retries) {
        const r = await ok(hs.url, "PUT", `${C}/rooms/${enc(a.roomId)}/send/m.room.message/${a.txnId}`, {
          token: a.sender.accessToken,
          body: { msgtype: "m.text", body: a.body },
        });
        assert.match(r.event_id, /^\$/);
      }
      for (const roomId of rooms) {
        const page = await allEventIds(hs.url, owner.accessToken, roomId);
        assert.equal(new Set(page).size, page.length, "no event ID twice in /messages");
      }
      const bodies = new Map<string, number>();
      for (const roomId of rooms) {
        let from = "";
        for (;;) {
          const p = await ok(
            hs.url,
            "GET",
            `${C}/rooms/${enc(roomId)}/messages?dir=f&limit=500${from ? `&from=${enc(from)}` : ""}`,
            { token: owner.accessToken },
          );
          for (const e of p.chunk)
            if (e.content?.body) bodies.set(e.content.body, (bodies.get(e.content.body) ?? 0) + 1);
          if (!p.end || p.chunk.length === 0) break;
          from = p.end;
        }
      }
      const dup = [...bodies].filter(([, n]) => n > 1);
      assert.deepEqual(dup, [], "a message body stored twice");
    });

    it("after the crashes, sends and incremental /sync work and pick up where the stream left off", async () => {
      const s0 = await ok(hs.url, "GET", `${C}/sync?timeout=0`, { token: owner.accessToken });
      const sent = await ok(hs.url, "PUT", `${C}/rooms/${enc(rooms[0])}/send/m.room.message/after-crash`, {
        token: senders[0].s.accessToken,
        body: { msgtype: "m.text", body: "after the crash" },
      });
      const s1 = await ok(hs.url, "GET", `${C}/sync?timeout=10000&since=${enc(s0.next_batch)}`, {
        token: owner.accessToken,
      });
      const evs = s1.rooms?.join?.[rooms[0]]?.timeline?.events ?? [];
      assert.ok(
        evs.some((e: any) => e.event_id === sent.event_id),
        "the new event arrives in incremental sync",
      );
      assert.deepEqual(hs.errorLines(), []);
    });
  });
}
