/**
 * The key fetcher and the federation client against a real HTTP server of the test's own, which plays other
 * homeservers (by Host header) and counts what it is asked: response checks, caching, negative caching, dedup,
 * bounded concurrency, notary signatures, the client's timeout and size limit.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { after, before, test } from "node:test";
import { silentLogger } from "../../core/logger.ts";
import { matrixSchema } from "../config.ts";
import { generateSigningKey, type SigningKey, signJson } from "../events/signing.ts";
import { SqliteStore } from "../store/sqlite/store.ts";
import { checkKeyResponse } from "./key-fetcher.ts";
import { ourKeysResponse } from "./server-keys.ts";
import { Federation } from "./service.ts";

type Handler = (req: IncomingMessage, res: ServerResponse, host: string) => void;
let server: Server;
let port: number;
let handler: Handler = (_q, res) => res.end("{}");
const requests: string[] = [];
let active = 0;
let maxActive = 0;

before(async () => {
  server = createServer((req, res) => {
    const host = String(req.headers.host);
    requests.push(`${host} ${req.method} ${req.url}`);
    active++;
    maxActive = Math.max(maxActive, active);
    res.on("close", () => active--);
    handler(req, res, host);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});
after(() => new Promise<void>((r) => server.close(() => r())));

const keys = new Map<string, SigningKey>();
const keyOf = (name: string) => {
  let k = keys.get(name);
  if (!k) {
    k = generateSigningKey();
    keys.set(name, k);
  }
  return k;
};
const fedCfg = (over: Record<string, unknown> = {}) =>
  matrixSchema.parse({ federation: { enabled: true, ...over } }).federation;

async function makeFederation(servers: string[], over: Record<string, unknown> = {}) {
  const hostMap = Object.fromEntries(servers.map((s) => [s, `http://127.0.0.1:${port}`]));
  const config = matrixSchema.parse({ serverName: "me.test", federation: { enabled: true, hostMap, ...over } });
  const store = new SqliteStore(":memory:");
  await store.init();
  const fed = new Federation({ serverName: "me.test", signingKey: keyOf("me.test"), config, store, log: silentLogger });
  return { fed, store };
}

/** Serves each server's own key response on /_matrix/key/v2/server (after `delayMs`). */
const honest =
  (delayMs = 0): Handler =>
  (_req, res, host) =>
    setTimeout(() => res.end(JSON.stringify(ourKeysResponse(host, keyOf(host), fedCfg()))), delayMs);

test("checkKeyResponse: name, keys, validity and self-signature checked; validity capped at 7 days", () => {
  const k = keyOf("a.test");
  const now = Date.now();
  const good = ourKeysResponse("a.test", k, fedCfg({ keyValidityMs: 30 * 86_400_000 }), now);
  const rows = checkKeyResponse(good, "a.test", now);
  assert.deepEqual(
    rows.map((r) => [r.keyId, r.publicKey, r.expiredTs]),
    [[k.keyId, k.publicKeyBase64, null]],
  );
  assert.equal(rows[0].validUntilTs, now + 7 * 86_400_000);
  const bad = (body: unknown, re: RegExp) => assert.throws(() => checkKeyResponse(body, "a.test", now), re);
  bad([], /not a JSON object/);
  bad({ ...good, server_name: "b.test" }, /server_name/);
  bad({ ...good, valid_until_ts: 1.5 }, /valid_until_ts/);
  bad({ ...good, verify_keys: [] }, /verify_keys/);
  bad({ ...good, valid_until_ts: good.valid_until_ts + 1 }, /does not verify/);
  const { signatures: _s, ...unsigned } = good;
  bad(unsigned, /not signed/);
  // Signed only by a key it does not list: not self-signed.
  bad(signJson(unsigned, "a.test", generateSigningKey()), /not signed/);
});

test("keys are fetched once, cached in the store; a bad answer is negatively cached (no retry storm)", async () => {
  const { fed, store } = await makeFederation(["a.test", "liar.test"], { keyFetchBackoffMs: 600_000 });
  requests.length = 0;
  handler = (req, res, host) => {
    if (host === "liar.test") res.end(JSON.stringify(ourKeysResponse("someone-else.test", keyOf("x"), fedCfg())));
    else honest()(req, res, host);
  };
  const a = keyOf("a.test");
  assert.equal((await fed.keys.verifyKey("a.test", a.keyId))?.publicKey, a.publicKeyBase64);
  assert.equal((await fed.keys.verifyKey("a.test", a.keyId))?.publicKey, a.publicKeyBase64);
  assert.equal((await store.serverKeys.getServerKeys("a.test")).length, 1);
  for (let i = 0; i < 5; i++) assert.equal(await fed.keys.verifyKey("liar.test", `ed25519:k${i}`), null);
  assert.deepEqual(requests, ["a.test GET /_matrix/key/v2/server", "liar.test GET /_matrix/key/v2/server"]);
  // A fresh fetcher on the same store reads the cache instead of the network.
  const again = new Federation({
    serverName: "me.test",
    signingKey: keyOf("me.test"),
    config: matrixSchema.parse({ serverName: "me.test", federation: { enabled: true } }),
    store,
    log: silentLogger,
  });
  assert.equal((await again.keys.verifyKey("a.test", a.keyId))?.publicKey, a.publicKeyBase64);
  assert.equal(requests.length, 2);
  await store.close();
});

test("concurrent lookups: one fetch per server, at most maxConcurrentKeyFetches servers at once", async () => {
  const names = Array.from({ length: 12 }, (_, i) => `s${i}.test`);
  const { fed, store } = await makeFederation(names, { maxConcurrentKeyFetches: 3 });
  requests.length = 0;
  maxActive = 0;
  handler = honest(20);
  const results = await Promise.all(names.flatMap((n) => [1, 2, 3].map(() => fed.keys.verifyKey(n, keyOf(n).keyId))));
  assert.ok(results.every((r) => r !== null));
  assert.equal(requests.length, names.length, "three lookups of a server share one fetch");
  assert.ok(maxActive <= 3, `at most 3 fetches at once, saw ${maxActive}`);
  assert.ok(maxActive >= 2, "fetches do run in parallel");
  await store.close();
});

test("notary fallback: the answer must be signed by the notary, checked against its own key", async () => {
  const { fed, store } = await makeFederation(["down.test", "notary.test", "bad-notary.test"], {
    trustedKeyServers: [{ serverName: "bad-notary.test" }, { serverName: "notary.test" }],
  });
  const down = keyOf("down.test");
  const downResponse = ourKeysResponse("down.test", down, fedCfg());
  handler = (req, res, host) => {
    if (host === "down.test") {
      res.statusCode = 502;
      res.end("{}");
    } else if (req.url === "/_matrix/key/v2/server") honest()(req, res, host);
    else if (host === "bad-notary.test")
      // Vouches without signing.
      res.end(JSON.stringify({ server_keys: [downResponse] }));
    else res.end(JSON.stringify({ server_keys: [signJson(downResponse, host, keyOf(host))] }));
  };
  requests.length = 0;
  assert.equal((await fed.keys.verifyKey("down.test", down.keyId))?.publicKey, down.publicKeyBase64);
  assert.deepEqual(requests, [
    "down.test GET /_matrix/key/v2/server",
    "bad-notary.test POST /_matrix/key/v2/query",
    "bad-notary.test GET /_matrix/key/v2/server",
    "notary.test POST /_matrix/key/v2/query",
    "notary.test GET /_matrix/key/v2/server",
  ]);
  await store.close();
});

test("federation client: timeout, response size limit, non-JSON and unreachable answers are clear errors", async () => {
  const { fed, store } = await makeFederation(["slow.test", "big.test", "html.test", "gone.test"], {
    requestTimeoutMs: 300,
    maxResponseBytes: 100_000,
    hostMap: {
      "slow.test": `http://127.0.0.1:${port}`,
      "big.test": `http://127.0.0.1:${port}`,
      "html.test": `http://127.0.0.1:${port}`,
      // A port nothing listens on (ours, closed again, would race; port 1 is privileged and unused here).
      "gone.test": "http://127.0.0.1:1",
    },
  });
  handler = (_req, res, host) => {
    if (host === "slow.test") return; // never answers
    if (host === "big.test") res.end(JSON.stringify({ a: "x".repeat(200_000) }));
    else res.end("<html>");
  };
  const get = (d: string) => fed.client.request(d, { method: "GET", path: "/_matrix/federation/v1/version" });
  await assert.rejects(get("slow.test"), (e: any) => e.code === "AMI_TIMEOUT");
  await assert.rejects(get("big.test"), (e: any) => e.code === "M_TOO_LARGE");
  await assert.rejects(get("html.test"), (e: any) => e.code === "AMI_UNAVAILABLE" && /not JSON/.test(e.message));
  await assert.rejects(get("gone.test"), (e: any) => e.code === "AMI_UNAVAILABLE" && /unreachable/.test(e.message));
  // Signed: the X-Matrix header names us and the destination.
  let auth = "";
  handler = (req, res) => {
    auth = String(req.headers.authorization);
    res.end("{}");
  };
  await get("html.test");
  assert.match(auth, /^X-Matrix origin="me\.test",destination="html\.test",key="ed25519:[^"]+",sig="[^"]+"$/);
  await store.close();
});

test("federation client: a discovered destination at a private or loopback address is refused unless allow-listed", async () => {
  const { fed, store } = await makeFederation([]);
  requests.length = 0;
  const get = (f: Federation, d: string) =>
    f.client.request(d, { method: "GET", path: "/_matrix/federation/v1/version" });
  await assert.rejects(
    get(fed, `127.0.0.1:${port}`),
    (e: any) => e.code === "M_FORBIDDEN" && /private/.test(e.message),
  );
  await assert.rejects(get(fed, `[::1]:${port}`), (e: any) => e.code === "M_FORBIDDEN");
  await assert.rejects(get(fed, "localhost:1"), (e: any) => e.code === "M_FORBIDDEN");
  assert.deepEqual(requests, [], "nothing was sent");
  await store.close();
  // Allow-listed: it is connected to (over TLS, which our plain test server does not speak).
  const open = await makeFederation([], { ipRangeAllowlist: ["127.0.0.0/8"] });
  await assert.rejects(get(open.fed, `127.0.0.1:${port}`), (e: any) => e.code === "AMI_UNAVAILABLE");
  await open.store.close();
});
