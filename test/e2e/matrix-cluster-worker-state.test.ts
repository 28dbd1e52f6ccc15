/**
 * What used to be per worker process on a scaled-out homeserver (issue 13, docs/ARCHITECTURE.md "Homeserver
 * scale-out"): two worker processes (matrix.workers = 2) on one real PostgreSQL database and the real Redis, each
 * addressed directly.
 * - A media ID created on A, a download of it waiting on B (timeout_ms 20 s), the bytes uploaded on A: B answers
 *   with the bytes at once (woken over the Redis bus), well before its timeout and before the 5 s store re-read
 *   that covers a lost bus message; three rounds, also with the download on A and the upload on B.
 * - The bytes are readable from both workers (the content-addressed store is shared), and an ID uploaded already
 *   answers a download at once on either.
 * - The same bytes PUT to one media ID through A and B at once: one upload wins (200), the other is refused
 *   (409 M_CANNOT_OVERWRITE_MEDIA, the store's unique media ID), and the loser does not take the winner's hold on
 *   the bytes with it (a GC of the store afterwards keeps them; both workers still serve them).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openStoreAt } from "../../src/cas/open.ts";
import { freePort } from "../../src/test/cli.ts";
import { api, ok, registerUser, type Session } from "./helpers/client.ts";
import { ChildHomeserver } from "./helpers/homeserver.ts";

/** A server name of its own: the Redis channel is per server name, and other runs share this Redis. */
const NAME = `cm${randomBytes(4).toString("hex")}.test`;
/** Other servers, all mapped to a closed port: their to-device messages stay undelivered (in the outbox). */
const REMOTES = [1, 2, 3, 4].map((i) => `rem${i}${randomBytes(3).toString("hex")}.test`);
const TODEVICE_PER_MINUTE = 4;
const TODEVICE_DESTINATIONS = 3;

describe("scale-out: async uploads and to-device admission across 2 workers", () => {
  let a: ChildHomeserver;
  let b: ChildHomeserver;
  let s: Session;

  before(async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    a = await ChildHomeserver.start({
      backend: "postgres",
      matrix: {
        serverName: NAME,
        workers: 2,
        federation: {
          enabled: true,
          hostMap: Object.fromEntries(REMOTES.map((r) => [r, closed])),
          requestTimeoutMs: 2000,
          toDevicePerSenderPerMinute: TODEVICE_PER_MINUTE,
          maxToDeviceDestinations: TODEVICE_DESTINATIONS,
        },
      },
    });
    b = await ChildHomeserver.start({ sharedWith: a });
    s = await registerUser(a.url, "cm_uploader");
  });
  after(async () => {
    const errors = [a, b].flatMap((w) => w?.errorLines() ?? []);
    await b?.dispose();
    await a?.dispose();
    assert.deepEqual(errors, [], "no internal errors on either worker");
  });

  const create = async (w: ChildHomeserver): Promise<string> => {
    const r = await ok(w.url, "POST", "/_matrix/media/v1/create", { token: s.accessToken, body: {} });
    return String(r.content_uri).split("/").pop()!;
  };

  async function download(w: ChildHomeserver, id: string, timeoutMs: number) {
    const res = await fetch(`${w.url}/_matrix/client/v1/media/download/${NAME}/${id}?timeout_ms=${timeoutMs}`, {
      headers: { Authorization: `Bearer ${s.accessToken}` },
    });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()), at: Date.now() };
  }

  /** PUT `parts` to a created ID, the next part only after `gapMs` (so two uploads can be under way at once). */
  function put(w: ChildHomeserver, id: string, parts: Buffer[], gapMs = 0): Promise<{ status: number; json: any }> {
    const u = new URL(w.url);
    const length = parts.reduce((n, p) => n + p.length, 0);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: u.hostname,
          port: Number(u.port),
          method: "PUT",
          path: `/_matrix/media/v3/upload/${NAME}/${id}?filename=late.bin`,
          headers: {
            Authorization: `Bearer ${s.accessToken}`,
            "Content-Type": "application/x-late",
            "Content-Length": String(length),
          },
        },
        (res) => {
          let t = "";
          res.on("data", (d) => (t += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, json: t ? JSON.parse(t) : undefined }));
        },
      );
      req.on("error", reject);
      (async () => {
        for (const [i, p] of parts.entries()) {
          if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
          req.write(p);
        }
        req.end();
      })();
    });
  }

  for (const [up, down] of [
    ["A", "B"],
    ["B", "A"],
    ["A", "B"],
  ] as const) {
    it(`a download waiting on ${down} is answered as soon as the upload completes on ${up}`, async () => {
      const [uw, dw] = up === "A" ? [a, b] : [b, a];
      const id = await create(uw);
      let settled = false;
      const waiting = download(dw, id, 20_000).finally(() => {
        settled = true;
      });
      // The download is parked on the other worker (nothing uploaded yet).
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(settled, false, "the download waits for the upload");
      const bytes = randomBytes(300_000);
      const r = await put(uw, id, [bytes]);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const uploadedAt = Date.now();
      const got = await waiting;
      assert.equal(got.status, 200, got.body.toString().slice(0, 300));
      assert.ok(got.body.equals(bytes), "the bytes uploaded on the other worker");
      const late = got.at - uploadedAt;
      // Woken over the bus: milliseconds. Without it: the 5 s store re-read (or the 20 s timeout).
      assert.ok(late < 1500, `answered ${late} ms after the upload completed`);
      // The bytes are in the shared store: both workers serve them at once.
      for (const w of [a, b]) {
        const again = await download(w, id, 0);
        assert.equal(again.status, 200);
        assert.ok(again.body.equals(bytes));
      }
    });
  }

  it("the same bytes PUT through A and B at once: one wins, the other is refused, the bytes stay held", async () => {
    const id = await create(a);
    const bytes = randomBytes(200_000);
    const parts = [bytes.subarray(0, 100_000), bytes.subarray(100_000)];
    // Both requests are past their checks and streaming before either commits.
    const results = await Promise.all([put(a, id, parts, 600), put(b, id, parts, 600)]);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 409], JSON.stringify(results.map((r) => r.json)));
    assert.equal(results.find((r) => r.status === 409)!.json.errcode, "M_CANNOT_OVERWRITE_MEDIA");
    // The winner's row relies on the hold "matrix.media:<id>"; the loser shared the object (same bytes).
    const cas = openStoreAt(join(a.dataDir, "cas"));
    const objectId = await cas.resolve(createHash("sha256").update(bytes).digest("hex"));
    assert.ok((await cas.stat(objectId)).holds.includes(`matrix.media:${id}`), "the winner's hold is still there");
    await cas.gc();
    for (const w of [a, b]) {
      const got = await download(w, id, 0);
      assert.equal(got.status, 200, got.body.toString().slice(0, 300));
      assert.ok(got.body.equals(bytes));
    }
  });

  /** One to-device message from `from` to a user of each of `servers`, through worker `w`: the status. */
  let txn = 0;
  async function toDevice(w: ChildHomeserver, from: Session, servers: string[]): Promise<number> {
    const messages = Object.fromEntries(servers.map((sv) => [`@x:${sv}`, { DEV: { n: txn } }]));
    const r = await api(w.url, "PUT", `/_matrix/client/v3/sendToDevice/m.ami.test/t${txn++}`, {
      token: from.accessToken,
      body: { messages },
    });
    if (r.status !== 200) assert.equal(r.json?.errcode, "M_LIMIT_EXCEEDED", r.text);
    return r.status;
  }

  it("to-device for other servers: one per-user count for the cluster, sent through A and B alternately", async () => {
    const u = await registerUser(a.url, "cm_talker");
    const statuses: number[] = [];
    for (let i = 0; i < TODEVICE_PER_MINUTE + 2; i++) statuses.push(await toDevice(i % 2 ? b : a, u, [REMOTES[0]]));
    // Per worker, each would have admitted 4 (8 in all): the six would all have passed.
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
  });

  it("to-device destinations cap: a new server past it is refused by both workers", async () => {
    const v = await registerUser(b.url, "cm_spreader");
    // REMOTES[0] holds undelivered messages already (the test above); two more servers fill the cap of 3.
    assert.equal(await toDevice(a, v, [REMOTES[1]]), 200);
    assert.equal(await toDevice(b, v, [REMOTES[2]]), 200);
    // The sender hears of messages queued through the other worker over the bus.
    await new Promise((r) => setTimeout(r, 300));
    for (const w of [a, b]) assert.equal(await toDevice(w, v, [REMOTES[3]]), 429, "a fourth server is refused");
    // A server holding messages already is fine on both (and the refusals above counted nothing for v).
    for (const w of [a, b]) assert.equal(await toDevice(w, v, [REMOTES[1]]), 200);
  });
});
