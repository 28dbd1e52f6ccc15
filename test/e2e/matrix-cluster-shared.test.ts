/**
 * What a scaled-out homeserver shares beyond events (issue 13, docs/ARCHITECTURE.md "Homeserver scale-out"): three
 * worker processes (matrix.workers = 3) on one real PostgreSQL database and the real Redis, behind a trusted proxy
 * address (matrix.trustedProxies = 127.0.0.1):
 * - a logout or a deactivation through one worker closes the session's WebSocket on another and ends its long-poll
 *   on a third with 401, and every worker refuses the token at once; a token the client refreshed does not end its
 *   long-poll with a false logout;
 * - X-Forwarded-For names the client only when the connection comes from the trusted proxy (last-seen IPs);
 * - a client hammering login, or sending, over all three workers is limited at one worker's rate (shared buckets);
 * - federation goes out from one worker only (one transaction-ID sequence at the remote server, never two at once),
 *   and when that worker is killed with -9 another takes over and delivers what the others send; a sender paused past
 *   its lease (SIGSTOP) sends nothing once resumed.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { SyncStream } from "../../src/matrix/websocket/client.ts";
import { freePort } from "../../src/test/cli.ts";
import { api, enc, ok, registerUser, type Session, waitFor } from "./helpers/client.ts";
import { FedServer } from "./helpers/federation.ts";
import { ChildHomeserver } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const PASSWORD = "correct horse battery";
/** A server name of its own: the Redis keys and channel are per server name, and other runs share this Redis. */
const NAME = `cs${randomBytes(4).toString("hex")}.test`;
const REMOTE = `remote${randomBytes(3).toString("hex")}.test`;
const RATE = { perSecond: 2, burst: 20 };

/** A POST from a chosen local address (127.0.0.2 is not a trusted proxy) with chosen headers. */
function postFrom(
  base: string,
  path: string,
  body: unknown,
  headers: Record<string, string>,
  localAddress?: string,
): Promise<{ status: number; json: any }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: Number(u.port),
        path,
        method: "POST",
        localAddress,
        headers: { "content-type": "application/json", ...headers },
      },
      (res) => {
        let b = "";
        res.on("data", (d) => (b += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: b ? JSON.parse(b) : undefined }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

const loginBody = (user: string, password = PASSWORD) => ({
  type: "m.login.password",
  identifier: { type: "m.id.user", user },
  password,
});

describe("scale-out: revocation, client addresses, rate limits and the federation sender shared by 3 workers", () => {
  let a: ChildHomeserver;
  let b: ChildHomeserver;
  let c: ChildHomeserver;
  let remote: FedServer;
  let redis: Redis;

  before(async () => {
    const remotePort = await freePort();
    a = await ChildHomeserver.start({
      backend: "postgres",
      matrix: {
        serverName: NAME,
        workers: 3,
        trustedProxies: ["127.0.0.1"],
        limits: { perUser: RATE, perIp: RATE },
        federation: {
          enabled: true,
          hostMap: { [REMOTE]: `http://127.0.0.1:${remotePort}` },
          requestTimeoutMs: 5000,
          retryInitialMs: 500,
          retryMaxMs: 2000,
        },
      },
    });
    [b, c] = await Promise.all([ChildHomeserver.start({ sharedWith: a }), ChildHomeserver.start({ sharedWith: a })]);
    // The remote reaches the cluster through A (what a proxy in front would do for federation).
    remote = new FedServer(REMOTE, remotePort, {
      serverName: REMOTE,
      port: remotePort,
      federation: { enabled: true, hostMap: { [NAME]: a.url }, requestTimeoutMs: 5000 },
    });
    await remote.start();
    redis = new Redis("redis://127.0.0.1:6379", { lazyConnect: true, maxRetriesPerRequest: 1 });
    // Other test runs on this machine may restart the shared Redis (matrix-scale-out does).
    redis.on("error", () => {});
    await redis.connect();
  });
  after(async () => {
    redis?.disconnect();
    await remote?.dispose();
    await Promise.all([b, c].map((x) => x?.dispose()));
    await a?.dispose();
  });

  /** Open a WebSocket on `ws` and a 30 s long-poll on `lp` for `s`, both current; resolve once both wait. */
  async function holdOpen(s: Session, ws: ChildHomeserver, lp: ChildHomeserver) {
    // Every worker has the token in its cache first: the revocation must reach the caches too.
    for (const w of [a, b, c]) await ok(w.url, "GET", `${C}/account/whoami`, { token: s.accessToken });
    const stream = new SyncStream(ws.url, { token: s.accessToken, onSync() {} });
    await stream.ready;
    let since = (await ok(lp.url, "GET", `${C}/sync?timeout=0`, { token: s.accessToken })).next_batch;
    // The WebSocket's presence write was acknowledged by `ws`; `lp` sees it once its persisted position passes it, a
    // moment later on a loaded machine, and a long-poll from before it would answer 200 with it at once. Drain.
    for (;;) {
      const r = await ok(lp.url, "GET", `${C}/sync?timeout=200&since=${enc(since)}`, { token: s.accessToken });
      if (r.next_batch === since) break;
      since = r.next_batch;
    }
    const poll = api(lp.url, "GET", `${C}/sync?timeout=30000&since=${enc(since)}`, { token: s.accessToken });
    // The long-poll is waiting (nothing new for this user; give the request time to arrive and park).
    await new Promise((r) => setTimeout(r, 300));
    return { stream, poll };
  }

  /** `p`, or a failure after 15 s (what is asserted must happen, not hang until the test's timeout). */
  const within = <T>(what: string, p: Promise<T>): Promise<T> =>
    Promise.race([
      p,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${what}: not within 15 s`)), 15_000).unref(),
      ),
    ]);

  async function assertRevoked(s: Session, held: Awaited<ReturnType<typeof holdOpen>>) {
    const closed = await within("the WebSocket closing", held.stream.closed);
    assert.equal(closed.code, 4401, `the WebSocket on another worker closes as unauthorized (${closed.reason})`);
    const polled = await within("the long-poll ending", held.poll);
    assert.equal(polled.status, 401, "the long-poll on a third worker ends with 401, not with its timeout's 200");
    assert.equal(polled.json.errcode, "M_UNKNOWN_TOKEN");
    for (const w of [a, b, c]) {
      const r = await api(w.url, "GET", `${C}/account/whoami`, { token: s.accessToken });
      assert.equal(r.status, 401, "every worker refuses the token at once (its cache dropped)");
    }
  }

  it("a logout through A closes the session's WebSocket on C and its long-poll on B", async () => {
    const s = await registerUser(a.url, "cs_dave");
    const held = await holdOpen(s, c, b);
    await ok(a.url, "POST", `${C}/logout`, { token: s.accessToken, body: {} });
    await assertRevoked(s, held);
  });

  it("a deactivation through B closes the WebSocket on A and the long-poll on C", async () => {
    const s = await registerUser(b.url, "cs_erin");
    const held = await holdOpen(s, a, c);
    const first = await api(b.url, "POST", `${C}/account/deactivate`, { token: s.accessToken, body: {} });
    assert.equal(first.status, 401);
    await ok(b.url, "POST", `${C}/account/deactivate`, {
      token: s.accessToken,
      body: { auth: { ...loginBody("cs_erin"), session: first.json.session } },
    });
    await assertRevoked(s, held);
  });

  it("a refresh on C retires the old token everywhere, but its long-poll on B answers as usual (no false logout)", async () => {
    await registerUser(a.url, "cs_hank");
    const login = await ok(a.url, "POST", `${C}/login`, { body: { ...loginBody("cs_hank"), refresh_token: true } });
    const old = login.access_token as string;
    const since = (await ok(b.url, "GET", `${C}/sync?timeout=0`, { token: old })).next_batch;
    const poll = api(b.url, "GET", `${C}/sync?timeout=3000&since=${enc(since)}`, { token: old });
    await new Promise((r) => setTimeout(r, 300));
    const fresh = await ok(c.url, "POST", `${C}/refresh`, { body: { refresh_token: login.refresh_token } });
    // The first use of the new token retires the old one (on every worker).
    await ok(a.url, "GET", `${C}/account/whoami`, { token: fresh.access_token });
    const polled = await poll;
    assert.equal(polled.status, 200, `the long-poll in flight: ${polled.text.slice(0, 200)}`);
    for (const w of [a, b, c])
      assert.equal(
        (await api(w.url, "GET", `${C}/account/whoami`, { token: old })).status,
        401,
        "the old token is gone",
      );
  });

  it("X-Forwarded-For names the client only from the trusted proxy address (last-seen IPs)", async () => {
    const s = await registerUser(a.url, "cs_fred");
    const viaProxy = await postFrom(b.url, `${C}/login`, loginBody("cs_fred"), {
      "x-forwarded-for": "198.51.100.9",
    });
    assert.equal(viaProxy.status, 200, JSON.stringify(viaProxy.json));
    const direct = await postFrom(
      c.url,
      `${C}/login`,
      loginBody("cs_fred"),
      { "x-forwarded-for": "6.6.6.6" },
      "127.0.0.2",
    );
    assert.equal(direct.status, 200, JSON.stringify(direct.json));
    const devices = (await ok(a.url, "GET", `${C}/devices`, { token: s.accessToken })).devices;
    const ipOf = (id: string) => devices.find((d: any) => d.device_id === id)?.last_seen_ip;
    assert.equal(ipOf(viaProxy.json.device_id), "198.51.100.9", "behind the proxy: the client's address");
    assert.equal(ipOf(direct.json.device_id), "127.0.0.2", "a direct client's header is ignored: its own address");
  });

  /** Rate-limit answers the workers gave from their own buckets (Redis unreachable), from their /metrics. */
  async function fallbacks(): Promise<number> {
    let n = 0;
    for (const w of [a, b, c]) {
      const m = /^ami_matrix_ratelimit_fallbacks_total (\d+)$/m.exec((await api(w.url, "GET", "/metrics")).text);
      assert.ok(m, "the fallback counter is exported");
      n += Number(m[1]);
    }
    return n;
  }

  /**
   * `n` requests spread over A, B and C, 15 at a time; how many were allowed and which workers said 429. Other runs
   * on this machine may restart the shared Redis meanwhile (matrix-scale-out does): then the workers rightly fall
   * back to their own buckets, and the round is run once more with fresh keys (`round` 1).
   */
  async function hammer(
    n: number,
    one: (w: ChildHomeserver, i: number, round: number) => Promise<{ status: number; json: any }>,
  ): Promise<{ allowed: number; limitedBy: Set<string>; most: number; seconds: number }> {
    for (let round = 0; ; round++) {
      const before = await fallbacks();
      const r = await hammerOnce(n, (w, i) => one(w, i, round));
      if ((await fallbacks()) === before || round === 1) return r;
      console.log("# the shared Redis was unreachable during the round (restarted by another run?): once more");
    }
  }

  async function hammerOnce(n: number, one: (w: ChildHomeserver, i: number) => Promise<{ status: number; json: any }>) {
    const t0 = performance.now();
    let allowed = 0;
    const limitedBy = new Set<string>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 15 }, async () => {
        while (next < n) {
          const i = next++;
          const w = [a, b, c][i % 3];
          const r = await one(w, i);
          if (r.status === 429) {
            assert.equal(r.json.errcode, "M_LIMIT_EXCEEDED");
            assert.ok(r.json.retry_after_ms > 0);
            limitedBy.add(w.url);
          } else allowed++;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    // One bucket: the burst, plus what refilled meanwhile (and one token of rounding). Three buckets would allow
    // up to three bursts: all of `n`.
    const most = RATE.burst + Math.ceil(seconds * RATE.perSecond) + 1;
    return { allowed, limitedBy, most, seconds };
  }

  it("a client hammering login over the three workers gets 429 at one worker's rate (per client IP)", async () => {
    const r = await hammer(60, (w, _i, round) =>
      postFrom(w.url, `${C}/login`, loginBody("cs_nobody", "wrong"), {
        "x-forwarded-for": `198.51.100.${7 + round * 10}`,
      }),
    );
    assert.ok(r.allowed >= RATE.burst, `at least the burst is allowed (${r.allowed})`);
    assert.ok(r.allowed <= r.most, `${r.allowed} allowed in ${r.seconds.toFixed(1)} s: at most ${r.most}`);
    assert.equal(r.limitedBy.size, 3, "every worker answers 429");
    // Another client (another forwarded address) has its own bucket.
    const other = await postFrom(a.url, `${C}/login`, loginBody("cs_nobody", "wrong"), {
      "x-forwarded-for": "198.51.100.8",
    });
    assert.equal(other.status, 403);
  });

  it("a user sending over the three workers is limited at one worker's rate", async () => {
    const s = await registerUser(c.url, "cs_gina");
    const roomId = (
      await ok(a.url, "POST", `${C}/createRoom`, { token: s.accessToken, body: { preset: "public_chat" } })
    ).room_id;
    const s2 = await registerUser(c.url, "cs_gina2");
    await ok(a.url, "POST", `${C}/join/${enc(roomId)}`, { token: s2.accessToken, body: {} });
    const r = await hammer(60, (w, i, round) =>
      api(w.url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/h${round}-${i}`, {
        token: round === 0 ? s.accessToken : s2.accessToken,
        body: { msgtype: "m.text", body: `hammer ${i}` },
      }),
    );
    // createRoom (or the second user's join) took one token.
    assert.ok(r.allowed >= RATE.burst - 1, `at least the burst is allowed (${r.allowed})`);
    assert.ok(r.allowed <= r.most, `${r.allowed} allowed in ${r.seconds.toFixed(1)} s: at most ${r.most}`);
    assert.equal(r.limitedBy.size, 3, "every worker answers 429");
  });

  it("one worker sends federation transactions; kill -9 of it: another takes over and delivers", async () => {
    const leaseKey = `ami-streams:matrix:${NAME}:federation-sender`;
    /** The PID of the lease holder (its bus ID is `<pid>-<random>`), once there is one. */
    const leaderPid = async () => {
      let v: string | null = null;
      await waitFor("a federation sender lease", async () => (v = await redis.get(leaseKey).catch(() => null)), 15_000);
      return Number(String(v).split("-")[0]);
    };
    /**
     * Never two senders at once: once a process's transaction IDs give way to another's, the first never sends
     * again, and each one's sequence numbers arrive in order. Returns the processes (ID prefixes) in turn.
     */
    const turns = (xs: string[]): string[] => {
      const order: string[] = [];
      const last = new Map<string, number>();
      for (const t of xs) {
        const [p, n] = t.split(".");
        if (order.at(-1) !== p) {
          assert.ok(!order.includes(p), `${p} sends again after another sender: ${xs.join(" ")}`);
          order.push(p);
        }
        assert.ok(Number(n) >= (last.get(p) ?? 0), `${p}'s transactions in order: ${xs.join(" ")}`);
        last.set(p, Number(n));
      }
      return order;
    };
    const workers = [a, b, c];
    // Transaction IDs the remote receives from the cluster, in arrival order ("<process prefix>.<seq>").
    const txns: string[] = [];
    const inbound = remote.hs.federation.inbound;
    const once = inbound.once.bind(inbound);
    inbound.once = (origin, txnId, run) => {
      if (origin === NAME) txns.push(txnId);
      return once(origin, txnId, run);
    };
    const rita = await registerUser(remote.url, "rita");
    const users = await Promise.all(workers.map((w, k) => registerUser(w.url, `cs_fed${k}`)));
    const roomId = (
      await ok(a.url, "POST", `${C}/createRoom`, { token: users[0].accessToken, body: { preset: "public_chat" } })
    ).room_id;
    for (const [k, w] of workers.entries())
      if (k > 0) await ok(w.url, "POST", `${C}/join/${enc(roomId)}`, { token: users[k].accessToken, body: {} });
    await ok(remote.url, "POST", `${C}/join/${enc(roomId)}?server_name=${enc(NAME)}`, {
      token: rita.accessToken,
      body: {},
    });
    const atRemote = async (ids: string[]) => {
      const got = await remote.hs.store.dag.getDagEvents(ids);
      return got.filter((e) => e && e.stream !== null).length === ids.length;
    };
    const who = new Map<string, number>();
    const sendFrom = async (ks: number[], count: number, tag: string) => {
      const ids: string[] = [];
      await Promise.all(
        ks.map(async (k) => {
          for (let i = 0; i < count; i++)
            ids.push(
              (
                await ok(workers[k].url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/${tag}${k}-${i}`, {
                  token: users[k].accessToken,
                  body: { msgtype: "m.text", body: `${tag} ${k} ${i}` },
                })
              ).event_id,
            );
          for (const id of ids) if (!who.has(id)) who.set(id, k);
        }),
      );
      return ids;
    };
    // Within the rate limit (burst 20 per user).
    const first = await sendFrom([0, 1, 2], 6, "f");
    await waitFor("the first 18 messages at the remote", () => atRemote(first), 30_000, 50).catch((e) => {
      for (const [k, w] of workers.entries())
        for (const l of w.logLines.filter((x) => /federation|cluster/.test(x)).slice(-15)) console.log(`# ${k}: ${l}`);
      return remote.hs.store.dag.getDagEvents(first).then((got) => {
        console.log(
          `# missing: ${first
            .filter((_id, i) => !got[i] || got[i].stream === null)
            .map((id) => `${id}@${first.indexOf(id)}:${got[first.indexOf(id)] ? "outlier" : "absent"}:${who.get(id)}`)
            .join(" ")}`,
        );
        console.log(`# sent order: ${first.join(" ")}`);
        console.log(`# txns: ${txns.join(" ")}`);
        return Promise.all(workers.map((w) => api(w.url, "GET", "/_ami/stats"))).then((st) => {
          for (const x of st) console.log(`# stats: ${JSON.stringify(x.json).slice(0, 600)}`);
          throw e;
        });
      });
    });
    const pid1 = await leaderPid();
    const senders = workers.filter((w) => w.pid === pid1);
    assert.equal(senders.length, 1, "the lease names one of the three workers");
    /** The live workers whose /metrics say they send federation. */
    const sendingNow = async (ws: ChildHomeserver[]) => {
      const out: ChildHomeserver[] = [];
      for (const w of ws) {
        const m = (await api(w.url, "GET", "/metrics")).text;
        if (/^ami_matrix_federation_sender 1$/m.test(m)) out.push(w);
        else assert.match(m, /^ami_matrix_federation_sender 0$/m);
      }
      return out;
    };
    assert.deepEqual(await sendingNow(workers), senders, "the lease holder, and only it, says it sends");
    const sent = turns(txns);
    // (More than one only if the shared Redis was restarted meanwhile: the lease went and was taken again.)
    assert.ok(sent.length >= 1);

    // The sender dies; the others keep sending, and one of them takes the lease and delivers.
    const before = txns.length;
    await senders[0].kill();
    const alive = workers.flatMap((w, k) => (w === senders[0] ? [] : [k]));
    const second = await sendFrom(alive, 5, "s");
    await waitFor("the messages sent after the kill at the remote", () => atRemote(second), 30_000, 100);
    const pid2 = await leaderPid();
    assert.notEqual(pid2, pid1, "another worker holds the lease");
    const survivors = workers.filter((w) => w !== senders[0]);
    assert.deepEqual(
      (await sendingNow(survivors)).map((w) => w.pid),
      [pid2],
      "one survivor sends: the new lease holder",
    );
    assert.ok(txns.length > before, "transactions after the kill");
    const all = turns(txns);
    assert.ok(all.length > sent.length, "a new sender took over");
    assert.ok(!txns.slice(before).some((t) => t.startsWith(`${sent.at(-1)}.`)), "the killed sender sent no more");

    // A sender paused past its lease (SIGSTOP: a long GC pause, a frozen VM) must not send once it runs again: the
    // other worker takes the lease meanwhile, and the paused one, on its own clock, knows its lease lapsed.
    // (The current holder: a restart of the shared Redis by another run may have moved the lease since.)
    const holder = await leaderPid();
    const paused = survivors.find((w) => w.pid === holder)!;
    assert.ok(paused, "a survivor holds the lease");
    const other = survivors.find((w) => w !== paused)!;
    const k = workers.indexOf(other);
    const mark = txns.length;
    process.kill(paused.pid, "SIGSTOP");
    let third: string[];
    try {
      third = await sendFrom([k], 3, "p");
      await waitFor("the messages sent while the sender is paused", () => atRemote(third), 30_000, 100).catch(
        async (e) => {
          for (const w of survivors)
            for (const l of w.logLines.filter((x) => /federation|cluster/.test(x)).slice(-8))
              console.log(`# ${w.pid}: ${l.slice(0, 300)}`);
          console.log(`# lease: ${await redis.get(leaseKey)} txns: ${txns.slice(mark).join(" ")}`);
          const st = await api(other.url, "GET", "/_ami/stats");
          console.log(`# other stats: ${JSON.stringify(st.json).slice(0, 500)}`);
          throw e;
        },
      );
    } finally {
      process.kill(paused.pid, "SIGCONT");
    }
    assert.equal(await leaderPid(), other.pid, "the running worker took the lease");
    // Resumed, the paused one hears the handovers queued for it and its timers fire: it must stand down, not send.
    await new Promise((r) => setTimeout(r, 2_000));
    const fourth = await sendFrom([k], 2, "q");
    await waitFor("the messages sent after the pause at the remote", () => atRemote(fourth), 30_000, 100);
    const afterPause = turns(txns);
    const pausedPrefix = afterPause.at(-2);
    assert.ok(txns.length > mark && pausedPrefix !== undefined);
    assert.ok(
      !txns.slice(mark).some((t) => t.startsWith(`${pausedPrefix}.`)),
      `the paused sender sent nothing after its lease lapsed: ${txns.slice(mark).join(" ")}`,
    );
    assert.deepEqual(
      (await sendingNow(survivors)).map((w) => w.pid),
      [other.pid],
      "the resumed worker says it does not send",
    );
  });
});
