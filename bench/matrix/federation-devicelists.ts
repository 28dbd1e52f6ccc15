/**
 * Remote device lists (issue 12): what the device-list cache buys and how fast an update travels.
 *
 * 1. keys/query latency for a hs1 user asked by bob on hs2: alice shares a room with bob, so hs2 answers from its
 *    device-list cache; baseline, same run, interleaved: carol (hs1) shares no room with anyone on hs2, so every
 *    query asks hs1 `user/keys/query` over federation (the path every query took before the cache).
 * 2. Device-list change delivery: alice renames her device on hs1 (`PUT /devices/{id}`) until bob's long-polling
 *    /sync on hs2 lists her in `device_lists.changed` (hs1 sends a chained `m.device_list_update`, hs2 applies it to
 *    its cache and marks her list changed).
 * Both homeservers in this process (SQLite, loopback, found through `federation.hostMap`).
 */
import { createPrivateKey, createPublicKey, randomBytes, sign } from "node:crypto";
import { unpaddedBase64 } from "../../src/matrix/events/base64.ts";
import { canonicalJsonBytes } from "../../src/matrix/events/canonical-json.ts";
import { register, startFederation, type TestUser } from "../../test/e2e/helpers/federation.ts";
import { type BenchResult, percentile, round, runIfMain } from "./lib.ts";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const ROUNDS = 3;
const WARMUP = 20;
const PKCS8 = Buffer.from("302e020100300506032b657004220420", "hex");

async function call(base: string, u: TestUser, method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${u.token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const j = await r.json();
  if (r.status !== 200) throw new Error(`bench: ${method} ${path} -> ${r.status} ${JSON.stringify(j)}`);
  return j;
}

/** Upload signed device keys for the user's device (an Ed25519 key made here). */
async function uploadKeys(base: string, u: TestUser): Promise<void> {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8, randomBytes(32)]), format: "der", type: "pkcs8" });
  const der = createPublicKey(priv).export({ format: "der", type: "spki" });
  const dk = {
    user_id: u.userId,
    device_id: u.deviceId,
    algorithms: ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
    keys: {
      [`curve25519:${u.deviceId}`]: unpaddedBase64(randomBytes(32)),
      [`ed25519:${u.deviceId}`]: unpaddedBase64(der.subarray(der.length - 32)),
    },
  };
  const sig = unpaddedBase64(sign(null, canonicalJsonBytes(dk), priv));
  const device_keys = { ...dk, signatures: { [u.userId]: { [`ed25519:${u.deviceId}`]: sig } } };
  await call(base, u, "POST", "/_matrix/client/v3/keys/upload", { device_keys });
}

export async function run(): Promise<BenchResult[]> {
  const s = await startFederation(["hs1.test", "hs2.test"]);
  const [hs1, hs2] = [s["hs1.test"], s["hs2.test"]];
  try {
    const alice = await register(hs1.url, "alice");
    const carol = await register(hs1.url, "carol");
    const bob = await register(hs2.url, "bob");
    for (const u of [alice, carol]) await uploadKeys(hs1.url, u);
    const room = (await call(hs1.url, alice, "POST", "/_matrix/client/v3/createRoom", { invite: [bob.userId] }))
      .room_id;
    await call(hs2.url, bob, "POST", `/_matrix/client/v3/join/${encodeURIComponent(room)}?server_name=hs1.test`, {});

    const query = async (who: TestUser): Promise<number> => {
      const t = performance.now();
      const r = await call(hs2.url, bob, "POST", "/_matrix/client/v3/keys/query", {
        device_keys: { [who.userId]: [] },
      });
      const ms = performance.now() - t;
      if (!r.device_keys[who.userId]?.[who.deviceId]) throw new Error(`bench: no keys for ${who.userId}`);
      return ms;
    };
    const measure = async (who: TestUser) => {
      for (let i = 0; i < WARMUP; i++) await query(who);
      const xs: number[] = [];
      for (let i = 0; i < SAMPLES; i++) xs.push(await query(who));
      return xs;
    };
    const cached: number[] = [];
    const remote: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      remote.push(...(await measure(carol)));
      cached.push(...(await measure(alice)));
    }
    if ((await hs2.hs.store.deviceLists.getRemoteDeviceLists([alice.userId])).length !== 1)
      throw new Error("bench: hs2 does not cache alice's list");

    // Device-list change delivery: rename on hs1 -> bob's /sync on hs2 lists alice as changed.
    let since = (await call(hs2.url, bob, "GET", "/_matrix/client/v3/sync?timeout=0")).next_batch;
    const change = async (i: number): Promise<number> => {
      const t = performance.now();
      const synced = (async () => {
        for (;;) {
          const r = await call(
            hs2.url,
            bob,
            "GET",
            `/_matrix/client/v3/sync?timeout=10000&since=${encodeURIComponent(since)}`,
          );
          since = r.next_batch;
          if (r.device_lists?.changed?.includes(alice.userId)) return;
        }
      })();
      await call(hs1.url, alice, "PUT", `/_matrix/client/v3/devices/${encodeURIComponent(alice.deviceId)}`, {
        display_name: `n${i}`,
      });
      await synced;
      return performance.now() - t;
    };
    const deliveries: number[] = [];
    const N = Math.max(20, Math.round(SAMPLES / 4));
    for (let i = 0; i < WARMUP / 4 + N; i++) {
      const ms = await change(i);
      if (i >= WARMUP / 4) deliveries.push(ms);
    }
    const [row] = await hs2.hs.store.deviceLists.getRemoteDeviceLists([alice.userId]);
    if (row.devices[alice.deviceId]?.displayName !== `n${WARMUP / 4 + N - 1}`)
      throw new Error("bench: hs2's cache does not hold alice's last name");

    const baseline = `uncached (carol shares no room: user/keys/query to hs1 each time): p50 ${round(percentile(remote, 50), 2)} ms, p99 ${round(percentile(remote, 99), 2)} ms`;
    return [
      {
        bench: "federation: keys/query of a hs1 user on hs2, from the device-list cache",
        metric: "p50",
        value: round(percentile(cached, 50), 2),
        unit: "ms",
        baseline,
        target: "",
        met: null,
      },
      {
        bench: "federation: keys/query of a hs1 user on hs2, from the device-list cache",
        metric: "p99",
        value: round(percentile(cached, 99), 2),
        unit: "ms",
        baseline: "(same)",
        target: "",
        met: null,
      },
      {
        bench: "federation: device rename on hs1 -> device_lists.changed in /sync on hs2",
        metric: "p50",
        value: round(percentile(deliveries, 50), 2),
        unit: "ms",
        baseline: `p99 ${round(percentile(deliveries, 99), 2)} ms over ${deliveries.length} changes`,
        target: "",
        met: null,
      },
    ];
  } finally {
    for (const h of Object.values(s)) await h.dispose();
  }
}

await runIfMain(import.meta, run);
