/**
 * Memory stays bounded under load (issue: "memory never grows without bound"). The same round of logins,
 * sends, typing, receipts, long-polls, syncs, pagination and logouts runs several times against a child
 * homeserver; after a forced full GC (admin-only POST /_ami/debug/gc, child started with --expose-gc), the V8
 * heap after the last round must not exceed the heap after the first round by more than a generous bound.
 * Every round leaves its events, devices and rooms in the store, so a structure that keeps something per
 * request, event, token or room shows up as growth here.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { registrationMac } from "../../src/matrix/client/admin.ts";
import { api, enc, loginUser, ok, registerUser, type Session } from "./helpers/client.ts";
import { ChildHomeserver } from "./helpers/homeserver.ts";

const SECRET = "memory-test-shared-secret";
const USERS = 8;
const MESSAGES = 60;
const ROUNDS = 4;
/** Allowed heap growth from the end of round 1 to the end of the last round (the per-round data is far larger). */
const MAX_GROWTH_MB = 4;
const V3 = "/_matrix/client/v3";

let hs: ChildHomeserver;
let admin: Session;
let users: Session[];
let hall: string;

async function sharedSecretAdmin(url: string): Promise<Session> {
  const { nonce } = await ok(url, "GET", "/_synapse/admin/v1/register");
  const p = { nonce, username: "memadmin", password: "pw memadmin", admin: true };
  const j = await ok(url, "POST", "/_synapse/admin/v1/register", { body: { ...p, mac: registrationMac(SECRET, p) } });
  return { userId: j.user_id, accessToken: j.access_token, deviceId: j.device_id };
}

/** Full GC in the child; the V8 heap in use afterwards, in MB. */
async function heapAfterGc(): Promise<number> {
  const j = await ok(hs.url, "POST", "/_ami/debug/gc", { token: admin.accessToken, body: {} });
  return j.heap_used_bytes / 1048576;
}

async function sync(s: Session, query: string): Promise<any> {
  return ok(hs.url, "GET", `${V3}/sync?${query}`, { token: s.accessToken });
}

async function round(r: number): Promise<void> {
  const { url } = hs;
  // Fresh devices and tokens every round (they are logged out at the end).
  const sessions = await Promise.all(users.map((u) => loginUser(url, u.userId)));
  const room = (
    await ok(url, "POST", `${V3}/createRoom`, {
      token: admin.accessToken,
      body: { preset: "public_chat", name: `round ${r}` },
    })
  ).room_id;
  for (const s of sessions) await ok(url, "POST", `${V3}/join/${enc(room)}`, { token: s.accessToken, body: {} });

  const filter = JSON.stringify({ room: { state: { lazy_load_members: true }, timeline: { limit: 20 } } });
  const first = await Promise.all(sessions.map((s) => sync(s, `filter=${enc(filter)}`)));

  await Promise.all(
    sessions.map(async (s, i) => {
      // Parked until the sends below wake it.
      const poll = sync(s, `since=${first[i].next_batch}&timeout=10000`);
      let last = "";
      for (let m = 0; m < MESSAGES; m++) {
        const target = m % 2 ? hall : room;
        if (m % 10 === 0)
          await ok(url, "PUT", `${V3}/rooms/${enc(target)}/typing/${enc(s.userId)}`, {
            token: s.accessToken,
            body: { typing: m % 20 === 0, timeout: 5000 },
          });
        last = (
          await ok(url, "PUT", `${V3}/rooms/${enc(target)}/send/m.room.message/r${r}m${m}`, {
            token: s.accessToken,
            body: { msgtype: "m.text", body: `round ${r} message ${m} from ${s.userId} ${"x".repeat(200)}` },
          })
        ).event_id;
      }
      await ok(url, "POST", `${V3}/rooms/${enc(hall)}/receipt/m.read/${enc(last)}`, {
        token: s.accessToken,
        body: {},
      });
      await poll;
      await sync(s, `since=${first[i].next_batch}&filter=${enc(filter)}`);
      await ok(url, "GET", `${V3}/rooms/${enc(hall)}/messages?dir=b&limit=50`, { token: s.accessToken });
    }),
  );
  for (const s of sessions) await ok(url, "POST", `${V3}/logout`, { token: s.accessToken, body: {} });
}

before(async () => {
  hs = await ChildHomeserver.start({
    matrix: { registration: { sharedSecret: SECRET } },
    env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --expose-gc`.trim() },
  });
  admin = await sharedSecretAdmin(hs.url);
  users = await Promise.all(Array.from({ length: USERS }, (_, i) => registerUser(hs.url, `mem${i}`)));
  hall = (await ok(hs.url, "POST", `${V3}/createRoom`, { token: admin.accessToken, body: { preset: "public_chat" } }))
    .room_id;
  for (const u of users) await ok(hs.url, "POST", `${V3}/join/${enc(hall)}`, { token: u.accessToken, body: {} });
});

after(async () => {
  await hs?.dispose();
});

test("/_ami/stats reports heap_used_mb; /_ami/debug/gc is for server admins only", async () => {
  const stats = await ok(hs.url, "GET", "/_ami/stats");
  assert.equal(typeof stats.heap_used_mb, "number");
  assert.ok(stats.heap_used_mb > 0);
  const denied = await api(hs.url, "POST", "/_ami/debug/gc", { token: users[0].accessToken, body: {} });
  assert.equal(denied.status, 403);
  assert.equal(denied.json.errcode, "M_FORBIDDEN");
  assert.equal((await api(hs.url, "POST", "/_ami/debug/gc", { body: {} })).status, 401);
});

test(`${ROUNDS} identical load rounds: the heap after GC grows by less than ${MAX_GROWTH_MB} MB after round 1`, async (t) => {
  await round(1);
  const base = await heapAfterGc();
  const heaps = [base];
  for (let r = 2; r <= ROUNDS; r++) {
    await round(r);
    heaps.push(await heapAfterGc());
  }
  t.diagnostic(`heap after GC per round (MB): ${heaps.map((h) => h.toFixed(2)).join(", ")}`);
  const growth = heaps[heaps.length - 1] - base;
  assert.ok(
    growth < MAX_GROWTH_MB,
    `heap grew ${growth.toFixed(2)} MB over ${ROUNDS - 1} rounds (${heaps.join(", ")})`,
  );
  // The rounds really ran: every message of every round is in the hall.
  const page = await ok(hs.url, "GET", `${V3}/rooms/${enc(hall)}/messages?dir=b&limit=1`, {
    token: admin.accessToken,
  });
  assert.match(page.chunk[0]?.content?.body ?? "", new RegExp(`^round ${ROUNDS} message`));
  assert.deepEqual(hs.errorLines(), []);
});
