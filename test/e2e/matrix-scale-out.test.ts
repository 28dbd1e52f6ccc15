/**
 * Homeserver scale-out (issue 13, docs/ARCHITECTURE.md "Homeserver scale-out"): three homeserver processes with
 * matrix.workers = 3 on one real PostgreSQL database and the real Redis. Clients on different processes see each
 * other's messages in one order, typing, receipts and to-device messages; a WebSocket stream on C gets what is sent
 * through A; sends through A and B interleaved over many rooms (each room persisted by the worker its ID hashes
 * to, the others forwarding) reach long-polls and a WebSocket exactly once, in order per room; Redis restarted
 * mid-run loses nothing; kill -9 of a worker under load loses no acknowledged event and duplicates none.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { SyncStream } from "../../src/matrix/websocket/client.ts";
import { cli, freePort, json, tempHome } from "../../src/test/cli.ts";
import { api, enc, ok, registerUser, type Session, waitFor } from "./helpers/client.ts";
import { ChildHomeserver, createTestDatabase, tempDir } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
/** Whole timelines in incremental syncs (the default limit would cut a burst into a gap). */
const FILTER = enc(JSON.stringify({ room: { timeline: { limit: 200 } } }));

interface User {
  s: Session;
  hs: ChildHomeserver;
  since: string;
}

/** Long-poll /sync on the user's own process from its `since` until `done` holds over what was gathered. */
async function syncUntil(u: User, done: (acc: any[]) => boolean, timeoutMs = 20_000): Promise<any[]> {
  const acc: any[] = [];
  const end = Date.now() + timeoutMs;
  while (!done(acc)) {
    if (Date.now() > end) throw new Error(`${u.s.userId}: sync did not deliver in ${timeoutMs} ms`);
    const r = await ok(u.hs.url, "GET", `${C}/sync?since=${enc(u.since)}&timeout=2000&filter=${FILTER}`, {
      token: u.s.accessToken,
    });
    u.since = r.next_batch;
    acc.push(r);
  }
  return acc;
}

const timelineIds = (syncs: any[], roomId: string): string[] =>
  syncs.flatMap((r) => (r.rooms?.join?.[roomId]?.timeline?.events ?? []).map((e: any) => e.event_id));

describe("homeserver scale-out: 3 workers on PostgreSQL + Redis", () => {
  let a: ChildHomeserver;
  let b: ChildHomeserver;
  let c: ChildHomeserver;
  let alice: User;
  let bob: User;
  let carol: User;
  let roomId = "";

  before(async () => {
    a = await ChildHomeserver.start({ backend: "postgres", matrix: { workers: 3 } });
    [b, c] = await Promise.all([ChildHomeserver.start({ sharedWith: a }), ChildHomeserver.start({ sharedWith: a })]);
    const reg = async (hs: ChildHomeserver, name: string): Promise<User> => {
      const s = await registerUser(hs.url, name);
      return { s, hs, since: "" };
    };
    [alice, bob, carol] = await Promise.all([reg(a, "so_alice"), reg(b, "so_bob"), reg(c, "so_carol")]);
    roomId = (
      await ok(a.url, "POST", `${C}/createRoom`, { token: alice.s.accessToken, body: { preset: "public_chat" } })
    ).room_id;
    // bob joins through B, carol through C: the room's head cached on A is stale for A's next send.
    await ok(b.url, "POST", `${C}/join/${enc(roomId)}`, { token: bob.s.accessToken, body: {} });
    await ok(c.url, "POST", `${C}/join/${enc(roomId)}`, { token: carol.s.accessToken, body: {} });
    for (const u of [alice, bob, carol])
      u.since = (await ok(u.hs.url, "GET", `${C}/sync?timeout=0`, { token: u.s.accessToken })).next_batch;
  });
  after(async () => {
    await Promise.all([b, c].map((x) => x?.dispose()));
    await a?.dispose();
  });

  it("messages sent concurrently through A, B and C reach every client in the same order, with a linear DAG", async () => {
    const sent: string[] = [];
    await Promise.all(
      [alice, bob, carol].map(async (u, k) => {
        for (let i = 0; i < 12; i++) {
          const r = await ok(u.hs.url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/t${k}-${i}`, {
            token: u.s.accessToken,
            body: { msgtype: "m.text", body: `${u.s.userId} ${i}` },
          });
          sent.push(r.event_id);
        }
      }),
    );
    const seen = await Promise.all(
      [alice, bob, carol].map(async (u) =>
        timelineIds(await syncUntil(u, (acc) => timelineIds(acc, roomId).length >= sent.length), roomId),
      ),
    );
    assert.deepEqual(new Set(seen[0]), new Set(sent), "every acknowledged event, once");
    assert.equal(seen[0].length, sent.length);
    assert.deepEqual(seen[1], seen[0], "bob (on B) sees alice's order (on A)");
    assert.deepEqual(seen[2], seen[0], "carol (on C) sees alice's order");
    // One writer at a time per room, on a current head: one forward extremity, every event one prev event.
    const db = new pg.Client({ connectionString: a.db.database });
    await db.connect();
    try {
      const ext = await db.query("SELECT count(*)::int AS n FROM ami_matrix.forward_extremities WHERE room_id = $1", [
        roomId,
      ]);
      assert.equal(ext.rows[0].n, 1, "one forward extremity");
      const multi = await db.query(
        `SELECT e.event_id FROM ami_matrix.events e JOIN ami_matrix.event_edges g ON g.event_id = e.event_id
         WHERE e.room_id = $1 GROUP BY e.event_id HAVING count(*) <> 1`,
        [roomId],
      );
      assert.deepEqual(multi.rows, [], "no event with several prev events (no fork)");
    } finally {
      await db.end();
    }
  });

  it("a user-interactive flow started on A completes on B (UIA sessions are shared)", async () => {
    const body = { username: "so_uia", password: "correct horse battery" };
    const first = await api(a.url, "POST", `${C}/register`, { body });
    assert.equal(first.status, 401);
    const r = await ok(b.url, "POST", `${C}/register`, {
      body: { ...body, auth: { type: "m.login.dummy", session: first.json.session } },
    });
    assert.match(r.user_id, /^@so_uia:/);
  });

  it("typing through A reaches bob's sync on B; a receipt through B reaches carol on C", async () => {
    await ok(a.url, "PUT", `${C}/rooms/${enc(roomId)}/typing/${enc(alice.s.userId)}`, {
      token: alice.s.accessToken,
      body: { typing: true, timeout: 20_000 },
    });
    const typingSeen = (acc: any[]) =>
      acc.some((r) =>
        (r.rooms?.join?.[roomId]?.ephemeral?.events ?? []).some(
          (e: any) => e.type === "m.typing" && e.content.user_ids.includes(alice.s.userId),
        ),
      );
    await syncUntil(bob, typingSeen);
    const last = (
      await ok(b.url, "GET", `${C}/rooms/${enc(roomId)}/messages?dir=b&limit=1`, { token: bob.s.accessToken })
    ).chunk[0].event_id;
    await ok(b.url, "POST", `${C}/rooms/${enc(roomId)}/receipt/m.read/${enc(last)}`, {
      token: bob.s.accessToken,
      body: {},
    });
    await syncUntil(carol, (acc) =>
      acc.some((r) =>
        (r.rooms?.join?.[roomId]?.ephemeral?.events ?? []).some(
          (e: any) => e.type === "m.receipt" && e.content[last]?.["m.read"]?.[bob.s.userId],
        ),
      ),
    );
  });

  it("presence set through B reaches alice's sync on A", async () => {
    await ok(b.url, "PUT", `${C}/presence/${enc(bob.s.userId)}/status`, {
      token: bob.s.accessToken,
      body: { presence: "online", status_msg: "on worker B" },
    });
    await syncUntil(alice, (acc) =>
      acc.some((r) =>
        (r.presence?.events ?? []).some(
          (e: any) => e.sender === bob.s.userId && e.content.status_msg === "on worker B",
        ),
      ),
    );
  });

  it("a to-device message sent through A reaches carol's sync on C", async () => {
    await ok(a.url, "PUT", `${C}/sendToDevice/m.ami.test/td1`, {
      token: alice.s.accessToken,
      body: { messages: { [carol.s.userId]: { [carol.s.deviceId]: { hello: "carol" } } } },
    });
    await syncUntil(carol, (acc) =>
      acc.some((r) => (r.to_device?.events ?? []).some((e: any) => e.type === "m.ami.test" && e.content.hello)),
    );
  });

  it("a WebSocket stream on C gets an event sent through A", async () => {
    const got: string[] = [];
    const stream = new SyncStream(c.url, {
      token: carol.s.accessToken,
      onSync(_next, data: any) {
        for (const e of data.rooms?.join?.[roomId]?.timeline?.events ?? []) got.push(e.event_id);
      },
    });
    try {
      await stream.ready;
      await waitFor("the stream's first frame", () => stream.since);
      const r = await ok(a.url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/ws1`, {
        token: alice.s.accessToken,
        body: { msgtype: "m.text", body: "to the WebSocket on C" },
      });
      await waitFor("the event on C's WebSocket", () => got.includes(r.event_id));
    } finally {
      await stream.close();
    }
  });

  it("Redis restarted mid-run: messages keep flowing in order, typing recovers after it is back", async () => {
    execFileSync("redis-cli", ["-p", "6379", "shutdown", "nosave"], { stdio: "ignore" });
    let up = false;
    try {
      // Without the bus, C learns A's position from PostgreSQL (cluster/index.ts POLL_MS).
      const r = await ok(a.url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/nr1`, {
        token: alice.s.accessToken,
        body: { msgtype: "m.text", body: "while Redis is down" },
      });
      await syncUntil(carol, (acc) => timelineIds(acc, roomId).includes(r.event_id));
      execFileSync("redis-server", [
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "-::1",
        "--port",
        "6379",
        "--save",
        "",
        "--appendonly",
        "no",
      ]);
      up = true;
      await waitFor("redis", () => {
        try {
          return execFileSync("redis-cli", ["ping"]).toString().includes("PONG");
        } catch {
          return false;
        }
      });
      // The bus reconnects by itself: a typing change (carried only by the bus) reaches C again.
      await waitFor(
        "typing from B to reach C after Redis came back",
        async () => {
          await api(b.url, "PUT", `${C}/rooms/${enc(roomId)}/typing/${enc(bob.s.userId)}`, {
            token: bob.s.accessToken,
            body: { typing: false },
          });
          await ok(b.url, "PUT", `${C}/rooms/${enc(roomId)}/typing/${enc(bob.s.userId)}`, {
            token: bob.s.accessToken,
            body: { typing: true, timeout: 20_000 },
          });
          const r = await ok(c.url, "GET", `${C}/sync?since=${enc(carol.since)}&timeout=300`, {
            token: carol.s.accessToken,
          });
          carol.since = r.next_batch;
          return (r.rooms?.join?.[roomId]?.ephemeral?.events ?? []).some(
            (e: any) => e.type === "m.typing" && e.content.user_ids.includes(bob.s.userId),
          );
        },
        20_000,
        200,
      );
    } finally {
      if (!up)
        execFileSync("redis-server", [
          "--daemonize",
          "yes",
          "--bind",
          "127.0.0.1",
          "-::1",
          "--port",
          "6379",
          "--save",
          "",
          "--appendonly",
          "no",
        ]);
    }
  });

  /** Rooms of the many-rooms test (each room's writer is the worker its ID hashes to); the kill test reuses them. */
  const rooms: string[] = [];

  it("sends through A and B interleaved over 8 rooms: long-polls on A and B and a WebSocket on C see each event once, in order per room", async () => {
    for (let i = 0; i < 8; i++) {
      const id = (
        await ok(a.url, "POST", `${C}/createRoom`, { token: alice.s.accessToken, body: { preset: "public_chat" } })
      ).room_id;
      rooms.push(id);
      await ok(b.url, "POST", `${C}/join/${enc(id)}`, { token: bob.s.accessToken, body: {} });
      await ok(c.url, "POST", `${C}/join/${enc(id)}`, { token: carol.s.accessToken, body: {} });
    }
    for (const u of [alice, bob])
      u.since = (await ok(u.hs.url, "GET", `${C}/sync?timeout=0`, { token: u.s.accessToken })).next_batch;
    // Collectors run while the sends go on, so they see the stream advance bit by bit (positions committed by two
    // writers at once): every timeline event of these rooms, per room, in delivery order.
    const perRoom = () => new Map<string, string[]>(rooms.map((r) => [r, []]));
    const seenA = perRoom();
    const seenB = perRoom();
    const seenWs = perRoom();
    const take = (into: Map<string, string[]>, data: any) => {
      for (const [r, list] of into)
        for (const e of data.rooms?.join?.[r]?.timeline?.events ?? []) list.push(e.event_id);
    };
    let collecting = true;
    const poll = async (u: User, into: Map<string, string[]>) => {
      while (collecting) {
        const r = await ok(u.hs.url, "GET", `${C}/sync?since=${enc(u.since)}&timeout=1000&filter=${FILTER}`, {
          token: u.s.accessToken,
        });
        u.since = r.next_batch;
        take(into, r);
      }
    };
    const ws = new SyncStream(c.url, { token: carol.s.accessToken, onSync: (_next, data: any) => take(seenWs, data) });
    await ws.ready;
    await waitFor("the stream's first frame", () => ws.since);
    for (const l of seenWs.values()) l.splice(0);
    const pollers = [poll(alice, seenA), poll(bob, seenB)];
    // 4 lanes (2 through A, 2 through B), each sending 12 messages over the rooms in turn: every worker's sends
    // reach rooms whose writer is another worker (forwarded) and rooms it writes itself.
    const acked = new Map<string, string[]>(rooms.map((r) => [r, []]));
    const lanes: Array<[User, string]> = [
      [alice, "a0"],
      [alice, "a1"],
      [bob, "b0"],
      [bob, "b1"],
    ];
    try {
      await Promise.all(
        lanes.map(async ([u, tag], k) => {
          for (let i = 0; i < 12; i++) {
            const r = rooms[(i + 2 * k) % rooms.length];
            const sent = await ok(u.hs.url, "PUT", `${C}/rooms/${enc(r)}/send/m.room.message/m${tag}-${i}`, {
              token: u.s.accessToken,
              body: { msgtype: "m.text", body: `${tag} ${i}` },
            });
            acked.get(r)!.push(sent.event_id);
          }
        }),
      );
      const total = [...acked.values()].reduce((n, l) => n + l.length, 0);
      const count = (m: Map<string, string[]>) => [...m.values()].reduce((n, l) => n + l.length, 0);
      await waitFor("every event on A's and B's long-polls and C's WebSocket", () =>
        [seenA, seenB, seenWs].every((m) => count(m) >= total),
      );
      collecting = false;
      await Promise.all(pollers);
      for (const r of rooms) {
        // The room's order as stored (stream order), read back once.
        const page = await ok(c.url, "GET", `${C}/rooms/${enc(r)}/messages?dir=f&limit=500`, {
          token: carol.s.accessToken,
        });
        const sentHere = new Set(acked.get(r));
        const stored = page.chunk.map((e: any) => e.event_id).filter((id: string) => sentHere.has(id));
        assert.equal(stored.length, sentHere.size, "every acknowledged event stored once");
        for (const [who, m] of [
          ["long-poll on A", seenA],
          ["long-poll on B", seenB],
          ["WebSocket on C", seenWs],
        ] as const)
          assert.deepEqual(
            m.get(r)!.filter((id) => sentHere.has(id)),
            stored,
            `${who}: room ${r} once each, in the stored order`,
          );
        // Each lane's sends to the room keep their order (a later send never gets an earlier position).
        const index = new Map<string, number>(stored.map((id: string, i: number) => [id, i]));
        const pos = acked.get(r)!.map((id) => index.get(id)!);
        for (const [u, tag] of lanes) {
          const mine = page.chunk
            .filter((e: any) => e.sender === u.s.userId && String(e.content?.body).startsWith(`${tag} `))
            .map((e: any) => Number(String(e.content.body).split(" ")[1]));
          assert.deepEqual(
            mine,
            [...mine].sort((x, y) => x - y),
            `${tag}'s sends to ${r} in order`,
          );
        }
        assert.equal(pos.length, sentHere.size);
      }
    } finally {
      collecting = false;
      await ws.close();
    }
  });

  it("a membership change through C gets through while A and B keep sending to the room (room leases are let go)", async () => {
    let stop = false;
    const lanes = [alice, bob].map(async (u, k) => {
      for (let i = 0; !stop; i++)
        await ok(u.hs.url, "PUT", `${C}/rooms/${enc(rooms[i % 3])}/send/m.room.message/l${k}-${i}`, {
          token: u.s.accessToken,
          body: { msgtype: "m.text", body: `steady ${i}` },
        });
    });
    try {
      await new Promise((r) => setTimeout(r, 300));
      // Leaves and joins are not forwarded: C takes each room's lock itself, which the rooms' writers hold as leases
      // while they are busy (three rooms: most likely written by A or B).
      for (const r of rooms.slice(0, 3))
        for (const path of [`rooms/${enc(r)}/leave`, `join/${enc(r)}`]) {
          const t0 = Date.now();
          await ok(c.url, "POST", `${C}/${path}`, { token: carol.s.accessToken, body: {} });
          assert.ok(Date.now() - t0 < 5000, `${path} took ${Date.now() - t0} ms`);
        }
    } finally {
      stop = true;
      await Promise.all(lanes);
    }
    // carol is a member again and reads the rooms.
    for (const r of rooms.slice(0, 3))
      await ok(c.url, "GET", `${C}/rooms/${enc(r)}/joined_members`, { token: carol.s.accessToken });
  });

  it("kill -9 of B while A and B send to 9 rooms: no acknowledged event is lost or seen twice, A keeps sending", async () => {
    // The 8 rooms of the test above and the first one: some are written by B, so A's sends to them are forwarded
    // to B until B dies, then persisted by A (or C) — the room locks and the persisted position keep that exact.
    const targets = [roomId, ...rooms];
    const acked: Array<{ room: string; id: string }> = [];
    let stop = false;
    const loop = async (u: User, tag: string, k: number) => {
      for (let i = 0; !stop; i++) {
        const room = targets[(i + k) % targets.length];
        const r = await api(u.hs.url, "PUT", `${C}/rooms/${enc(room)}/send/m.room.message/k${tag}-${i}`, {
          token: u.s.accessToken,
          body: { msgtype: "m.text", body: `${tag} ${i}` },
        }).catch(() => null);
        if (!r) return; // B is gone: its client would reconnect to another worker
        if (r.status === 200) acked.push({ room, id: r.json.event_id });
      }
    };
    // carol long-polls on C all along: what she sees must hold every acknowledged event exactly once.
    const seen = new Map<string, string[]>(targets.map((r) => [r, []]));
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const r = await ok(c.url, "GET", `${C}/sync?since=${enc(carol.since)}&timeout=1000&filter=${FILTER}`, {
          token: carol.s.accessToken,
        });
        carol.since = r.next_batch;
        for (const [room, list] of seen)
          for (const e of r.rooms?.join?.[room]?.timeline?.events ?? []) list.push(e.event_id);
      }
    })();
    const loops = [0, 1, 2].flatMap((k) => [loop(alice, `a${k}`, 3 * k), loop(bob, `b${k}`, 3 * k + 1)]);
    try {
      await waitFor("some sends through B", () => acked.length >= 20);
      await b.kill();
      // A's sends continue: B's room locks and busy lock died with its PostgreSQL sessions, and forwards to B fail
      // over to A.
      const before = acked.length;
      await waitFor("A to keep sending after the kill", () => acked.length >= before + 20, 20_000);
      stop = true;
      await Promise.all(loops);
      const has = (room: string, id: string) => seen.get(room)!.includes(id);
      await waitFor("carol's long-poll on C to see every acknowledged event", () =>
        acked.every((x) => has(x.room, x.id)),
      );
    } finally {
      stop = true;
      polling = false;
      await poller;
    }
    for (const [room, list] of seen) assert.equal(new Set(list).size, list.length, `${room}: no event seen twice`);
    // And /messages on C holds them all (nothing acknowledged was rolled back).
    const lost: string[] = [];
    for (const room of targets) {
      const all = new Set<string>();
      let from = "";
      for (;;) {
        const page = await ok(
          c.url,
          "GET",
          `${C}/rooms/${enc(room)}/messages?dir=b&limit=500${from ? `&from=${enc(from)}` : ""}`,
          { token: carol.s.accessToken },
        );
        for (const e of page.chunk) all.add(e.event_id);
        if (!page.end || page.chunk.length === 0) break;
        from = page.end;
      }
      for (const x of acked) if (x.room === room && !all.has(x.id)) lost.push(x.id);
    }
    assert.deepEqual(lost, [], "every acknowledged event is readable on C");
  });
});

/** PIDs listening on `port` (one per worker: they share it with SO_REUSEPORT). */
function listeners(port: number): number[] {
  const out = execFileSync("ss", ["-ltnpH"]).toString();
  return out
    .split("\n")
    .filter((l) => l.includes(`127.0.0.1:${port} `))
    .flatMap((l) => [...l.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
}

describe("ami-streams matrix start --workers N under the supervisor", () => {
  it("refuses more than one worker on SQLite with a clear error, before starting anything", async () => {
    const h = tempHome({ matrix: { port: await freePort() }, media: { enabled: false }, control: { port: 0 } });
    try {
      const r = await cli(["matrix", "start", "--workers", "2"], { env: h.env });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /needs a postgres:\/\/ 'matrix.database'/);
    } finally {
      await h.cleanup();
    }
  });

  it("starts 2 processes on one port; a worker killed with -9 is forked again; down stops them all", async () => {
    const dir = tempDir();
    const db = await createTestDatabase("postgres", dir);
    const port = await freePort();
    const h = tempHome({
      matrix: { port, database: db.database, registration: { enabled: true } },
      media: { enabled: false },
      control: { port: 0 },
    });
    try {
      const r = await cli(["matrix", "start", "--workers", "2"], { env: h.env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /started with 2 workers/);
      // `start` returns once the port answers (worker 0); the forked workers join it moments later.
      const pids = await waitFor("two processes listening on the port", () => {
        const now = listeners(port);
        return now.length === 2 ? now : null;
      });
      const s = await registerUser(`http://127.0.0.1:${port}`, "so_cli");
      assert.match(s.userId, /^@so_cli:/);
      const status = json(await cli(["status", "--json"], { env: h.env }));
      const main = status.services.find((x: { name: string }) => x.name === "matrix").pid;
      const worker = pids.find((p) => p !== main) as number;
      process.kill(worker, "SIGKILL");
      await waitFor("the worker forked again", () => {
        const now = listeners(port);
        return now.length === 2 && !now.includes(worker);
      });
      const down = await cli(["down"], { env: h.env });
      assert.equal(down.code, 0, down.stderr);
      await waitFor("no listener left", () => listeners(port).length === 0, 15_000);
    } finally {
      await h.cleanup();
      await db.drop();
    }
  });
});
