/**
 * The first layer of federation between real homeservers on loopback: hs1.test, hs2.test and hs3.test, each
 * in-process on its own port and SQLite store, finding each other through `federation.hostMap`. hs2 fetches
 * hs1's keys directly and hs3's through hs1 as notary (hs3 stopped by then); X-Matrix signed requests from hs1 are
 * served by hs2, forged ones refused with the right errcode; answers match the spec's server-server OpenAPI.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { signEvent } from "../../src/matrix/events/event-signing.ts";
import { generateSigningKey, verifyJsonSignature } from "../../src/matrix/events/signing.ts";
import { checkPduSignatures } from "../../src/matrix/federation/event-signatures.ts";
import { signRequest } from "../../src/matrix/federation/x-matrix.ts";
import { cli, freePort, json, tempHome } from "../../src/test/cli.ts";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { startInProcess } from "./helpers/homeserver.ts";

type Hs = Awaited<ReturnType<typeof startInProcess>>;

const KEYS = "server-server/keys_server.yaml";
const QUERY = "server-server/keys_query.yaml";

describe("federation: server keys, notary, X-Matrix between three homeservers", () => {
  let hs1: Hs;
  let hs2: Hs;
  let hs3: Hs;
  let deadPort: number;
  let hostMap: Record<string, string>;
  /** hs1 signed with this key before its current one, until OLD_EXPIRED. */
  const oldKey = generateSigningKey();
  const OLD_EXPIRED = Date.now() - 3600_000;

  before(async () => {
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    deadPort = await freePort();
    hostMap = {
      "hs1.test": `http://127.0.0.1:${p1}`,
      "hs2.test": `http://127.0.0.1:${p2}`,
      "hs3.test": `http://127.0.0.1:${p3}`,
      "dead.test": `http://127.0.0.1:${deadPort}`,
    };
    const fed = (over: Record<string, unknown> = {}) => ({
      enabled: true,
      hostMap,
      requestTimeoutMs: 5000,
      keyFetchBackoffMs: 600_000,
      ...over,
    });
    hs1 = await startInProcess({
      serverName: "hs1.test",
      port: p1,
      federation: fed({
        wellKnownServer: "fed.hs1.test:443",
        oldVerifyKeys: { [oldKey.keyId]: { key: oldKey.publicKeyBase64, expired_ts: OLD_EXPIRED } },
      }),
    });
    hs2 = await startInProcess({
      serverName: "hs2.test",
      port: p2,
      federation: fed({ deny: ["evil.test"], trustedKeyServers: [{ serverName: "hs1.test" }] }),
    });
    hs3 = await startInProcess({ serverName: "hs3.test", port: p3, federation: fed() });
  });

  after(async () => {
    for (const h of [hs1, hs2, hs3]) await h?.dispose().catch(() => {});
  });

  test("GET /_matrix/key/v2/server: our key, self-signed, valid for keyValidityMs, as the spec's schema says", async () => {
    const res = await fetch(`${hs1.url}/_matrix/key/v2/server`);
    assert.equal(res.status, 200);
    const body = await res.json();
    assertSpec(KEYS, "/server", "GET", 200, body);
    const k = hs1.hs.signingKey;
    assert.equal(body.server_name, "hs1.test");
    assert.deepEqual(body.verify_keys, { [k.keyId]: { key: k.publicKeyBase64 } });
    assert.deepEqual(body.old_verify_keys, {
      [oldKey.keyId]: { key: oldKey.publicKeyBase64, expired_ts: OLD_EXPIRED },
    });
    assert.ok(body.valid_until_ts > Date.now() + 23 * 3600_000);
    assert.ok(verifyJsonSignature(body, "hs1.test", k.keyId, k.publicKeyBase64));
    // The deprecated /server/{keyId} form answers the same.
    assert.equal((await (await fetch(`${hs1.url}/_matrix/key/v2/server/${k.keyId}`)).json()).server_name, "hs1.test");
  });

  test("version and well-known delegation are served, without authentication", async () => {
    const v = await (await fetch(`${hs1.url}/_matrix/federation/v1/version`)).json();
    assertSpec("server-server/version.yaml", "/version", "GET", 200, v);
    assert.equal(v.server.name, "ami-streams");
    const wk = await fetch(`${hs1.url}/.well-known/matrix/server`);
    const wkBody = await wk.json();
    assertSpec("server-server/wellknown.yaml", "/matrix/server", "GET", 200, wkBody);
    assert.deepEqual(wkBody, { "m.server": "fed.hs1.test:443" });
    // hs2 does not delegate: 404.
    assert.equal((await fetch(`${hs2.url}/.well-known/matrix/server`)).status, 404);
  });

  test("hs2 fetches hs1's key directly, caches it in its store, and does not ask again", async () => {
    const k1 = hs1.hs.signingKey;
    const before = hs2.hs.federation.keys.fetches;
    const got = await hs2.hs.federation.keys.verifyKey("hs1.test", k1.keyId);
    assert.equal(got?.publicKey, k1.publicKeyBase64);
    assert.equal(got?.expiredTs, null);
    const rows = await hs2.hs.store.serverKeys.getServerKeys("hs1.test");
    assert.deepEqual(
      rows.map((r) => [r.keyId, r.publicKey, r.expiredTs]).sort(),
      [
        [k1.keyId, k1.publicKeyBase64, null],
        [oldKey.keyId, oldKey.publicKeyBase64, OLD_EXPIRED],
      ].sort(),
    );
    // old_verify_keys are honoured for what was signed before they expired (events), never after (requests).
    const old = await hs2.hs.federation.keys.verifyKey("hs1.test", oldKey.keyId, OLD_EXPIRED - 1);
    assert.equal(old?.publicKey, oldKey.publicKeyBase64);
    assert.equal(await hs2.hs.federation.keys.verifyKey("hs1.test", oldKey.keyId, OLD_EXPIRED), null);
    assert.equal(await hs2.hs.federation.keys.verifyKey("hs1.test", oldKey.keyId), null);
    await hs2.hs.federation.keys.verifyKey("hs1.test", k1.keyId);
    assert.equal(hs2.hs.federation.keys.fetches, before + 1, "the second lookup came from the cache");
  });

  test("notary: hs1 vouches for hs3's keys (GET and POST query), then hs2 gets them through hs1 with hs3 down", async () => {
    const k3 = hs3.hs.signingKey;
    const post = await fetch(`${hs1.url}/_matrix/key/v2/query`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        server_keys: { "hs3.test": { [k3.keyId]: { minimum_valid_until_ts: Date.now() + 3600_000 } }, "dead.test": {} },
      }),
    });
    assert.equal(post.status, 200);
    const body = await post.json();
    assertSpec(QUERY, "/query", "POST", 200, body);
    // dead.test cannot be reached and nothing is cached: left out.
    assert.deepEqual(
      body.server_keys.map((r: any) => r.server_name),
      ["hs3.test"],
    );
    const [r3] = body.server_keys;
    assert.equal(r3.verify_keys[k3.keyId].key, k3.publicKeyBase64);
    assert.ok(verifyJsonSignature(r3, "hs3.test", k3.keyId, k3.publicKeyBase64), "hs3's own signature kept");
    const k1 = hs1.hs.signingKey;
    assert.ok(verifyJsonSignature(r3, "hs1.test", k1.keyId, k1.publicKeyBase64), "the notary's signature added");

    const get = await (await fetch(`${hs1.url}/_matrix/key/v2/query/hs3.test`)).json();
    assertSpec(QUERY, "/query/{serverName}", "GET", 200, get);
    assert.equal(get.server_keys[0].server_name, "hs3.test");
    // The notary also answers for itself.
    const self = await (await fetch(`${hs1.url}/_matrix/key/v2/query/hs1.test`)).json();
    assert.ok(verifyJsonSignature(self.server_keys[0], "hs1.test", k1.keyId, k1.publicKeyBase64));

    await hs3.dispose();
    const got = await hs2.hs.federation.keys.verifyKey("hs3.test", k3.keyId);
    assert.equal(got?.publicKey, k3.publicKeyBase64, "hs3's key through the notary hs1");
    assert.equal((await hs2.hs.store.serverKeys.getServerKeys("hs3.test")).length, 1);
  });

  test("bad notary queries are 400s with a clear errcode", async () => {
    const q = (body: unknown) =>
      fetch(`${hs1.url}/_matrix/key/v2/query`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    for (const [body, code] of [
      [{}, "M_BAD_JSON"],
      [{ server_keys: [] }, "M_BAD_JSON"],
      [{ server_keys: { "bad name!": {} } }, "M_INVALID_PARAM"],
      [{ server_keys: { "hs2.test": { "ed25519:x": { minimum_valid_until_ts: "soon" } } } }, "M_INVALID_PARAM"],
    ] as const) {
      const r = await q(body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal((await r.json()).errcode, code);
    }
    const r = await fetch(`${hs1.url}/_matrix/key/v2/query/hs2.test?minimum_valid_until_ts=abc`);
    assert.equal(r.status, 400);
    assert.deepEqual(
      await (await fetch(`${hs1.url}/_matrix/key/v2/query/hs2.test`)).json().then((b) => b.server_keys.length),
      1,
    );
  });

  test("a request hs1 signs is served by hs2 (query/profile over the federation client)", async () => {
    const reg = await fetch(`${hs2.url}/_matrix/client/v3/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "alice", password: "correct horse battery", auth: { type: "m.login.dummy" } }),
    });
    const { access_token: token } = await reg.json();
    await fetch(`${hs2.url}/_matrix/client/v3/profile/${encodeURIComponent("@alice:hs2.test")}/displayname`, {
      method: "PUT",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ displayname: "Alice" }),
    });
    const profile = await hs1.hs.federation.client.request<Record<string, unknown>>("hs2.test", {
      method: "GET",
      path: `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent("@alice:hs2.test")}`,
    });
    assertSpec("server-server/query.yaml", "/query/profile", "GET", 200, profile);
    assert.deepEqual(profile, { displayname: "Alice" });
    const field = await hs1.hs.federation.client.request("hs2.test", {
      method: "GET",
      path: `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent("@alice:hs2.test")}&field=avatar_url`,
    });
    assert.deepEqual(field, {});
    // A remote Matrix error comes back as that errcode.
    await assert.rejects(
      hs1.hs.federation.client.request("hs2.test", {
        method: "GET",
        path: `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent("@nobody:hs2.test")}`,
      }),
      (e: any) => e.code === "M_NOT_FOUND" && e.status === 404,
    );
  });

  test("forged and malformed X-Matrix requests are refused with the right errcode; hs2 stays up", async () => {
    const k1 = hs1.hs.signingKey;
    const uri = `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent("@alice:hs2.test")}`;
    const call = async (authorization?: string) => {
      const r = await fetch(`${hs2.url}${uri}`, { headers: authorization ? { Authorization: authorization } : {} });
      return { status: r.status, errcode: (await r.json()).errcode as string };
    };
    const signed = (over: Partial<{ origin: string; destination: string; method: string; uri: string }>, key = k1) =>
      signRequest({ method: "GET", uri, origin: "hs1.test", destination: "hs2.test", ...over }, key);
    assert.deepEqual(await call(signed({})), { status: 200, errcode: undefined });

    const fetchesBefore = hs2.hs.federation.keys.fetches;
    // Another key under hs1's key id: the signature does not verify.
    const impostor = { ...generateSigningKey(), keyId: k1.keyId };
    const forgedKey = generateSigningKey();
    const cases: [string, string | undefined, number, string][] = [
      ["wrong signature", signed({}, { ...forgedKey, keyId: k1.keyId, sign: forgedKey.sign }), 401, "M_UNAUTHORIZED"],
      ["impostor key id", signed({}, impostor), 401, "M_UNAUTHORIZED"],
      ["expired old key", signed({}, oldKey), 401, "M_UNAUTHORIZED"],
      ["signed for another uri", signed({ uri: "/_matrix/federation/v1/version" }), 401, "M_UNAUTHORIZED"],
      ["signed for another method", signed({ method: "POST" }), 401, "M_UNAUTHORIZED"],
      ["wrong destination", signed({ destination: "hs3.test" }), 401, "M_UNAUTHORIZED"],
      ["unknown key", signed({}, { ...forgedKey, keyId: "ed25519:nope" }), 401, "M_UNAUTHORIZED"],
      ["unknown key again", signed({}, { ...forgedKey, keyId: "ed25519:nope2" }), 401, "M_UNAUTHORIZED"],
      ["origin that is down", signed({ origin: "dead.test" }), 401, "M_UNAUTHORIZED"],
      ["origin that is down, again", signed({ origin: "dead.test" }), 401, "M_UNAUTHORIZED"],
      ["claims to be hs2 itself", signed({ origin: "hs2.test" }), 401, "M_UNAUTHORIZED"],
      ["malformed header", 'X-Matrix origin="hs1.test",key=', 401, "M_UNAUTHORIZED"],
      ["bearer instead", "Bearer abc", 401, "M_UNAUTHORIZED"],
      ["no header", undefined, 401, "M_UNAUTHORIZED"],
      ["denied origin", signed({ origin: "evil.test" }), 403, "M_FORBIDDEN"],
    ];
    for (const [name, header, status, errcode] of cases)
      assert.deepEqual(await call(header), { status, errcode }, name);
    // Unknown key ids of hs1 and the dead server cost at most one fetch each (then the backoff holds), not one per
    // request: no retry storm. hs1 had just been fetched, so its unknown ids wait for the refetch interval.
    assert.ok(
      hs2.hs.federation.keys.fetches - fetchesBefore <= 2,
      `fetches: ${hs2.hs.federation.keys.fetches - fetchesBefore}`,
    );
    assert.equal((await fetch(`${hs2.url}/_matrix/federation/v1/version`)).status, 200, "still serving");
    assert.deepEqual(await call(signed({})), { status: 200, errcode: undefined });
  });

  test("the federation client refuses denied servers; isolated mode serves no federation route and sends nothing", async () => {
    await assert.rejects(
      hs2.hs.federation.client.request("evil.test", { method: "GET", path: "/_matrix/federation/v1/version" }),
      (e: any) => e.code === "M_FORBIDDEN",
    );
    const iso = await startInProcess({ serverName: "iso.test" });
    try {
      const r = await fetch(`${iso.url}/_matrix/key/v2/server`);
      assert.equal(r.status, 404);
      assert.equal((await r.json()).errcode, "M_UNRECOGNIZED");
      assert.equal((await fetch(`${iso.url}/_matrix/federation/v1/version`)).status, 404);
      await assert.rejects(
        iso.hs.federation.client.request("hs1.test", { method: "GET", path: "/_matrix/federation/v1/version" }),
        (e: any) => e.code === "M_FORBIDDEN" && /disabled/.test(e.message),
      );
    } finally {
      await iso.dispose();
    }
  });

  test("ops: `matrix federation resolve` answers from the host map; `matrix federation keys` shows our keys", async () => {
    const home = tempHome({ matrix: { serverName: "hs1.test", federation: { enabled: true, hostMap } } });
    try {
      const r = json(await cli(["matrix", "federation", "resolve", "hs2.test", "--json"], { env: home.env }));
      assert.deepEqual(r, {
        serverName: "hs2.test",
        host: "127.0.0.1",
        port: Number(new URL(hostMap["hs2.test"]).port),
        tls: false,
        hostHeader: "hs2.test",
        via: "hostMap",
      });
      const none = await cli(["matrix", "federation", "keys"], { env: home.env });
      assert.notEqual(none.code, 0);
      assert.match(none.stderr, /no signing key yet/);
      const dir = join(home.home, "data", "matrix");
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(hs1.dataDir, "signing.key"), join(dir, "signing.key"));
      const k = json(await cli(["matrix", "federation", "keys", "--json"], { env: home.env }));
      const k1 = hs1.hs.signingKey;
      assert.deepEqual(k, {
        serverName: "hs1.test",
        federationEnabled: true,
        verifyKeys: { [k1.keyId]: { key: k1.publicKeyBase64 } },
        oldVerifyKeys: {},
      });
    } finally {
      await home.cleanup();
    }
  });

  test("PDU signatures: hs2 checks hs1's events with hs1's keys, old keys only for events made before they expired", async () => {
    const k1 = hs1.hs.signingKey;
    const pdu = (over: Record<string, unknown> = {}) => ({
      room_id: "!r:hs1.test",
      sender: "@alice:hs1.test",
      type: "m.room.message",
      content: { body: "hello", msgtype: "m.text" },
      origin_server_ts: Date.now(),
      depth: 3,
      prev_events: [],
      auth_events: [],
      ...over,
    });
    const keys = hs2.hs.federation.keys;
    const ok = await checkPduSignatures(signEvent(pdu(), "hs1.test", k1, "11"), "11", keys);
    assert.deepEqual([ok.ok, ok.ok && ok.redacted], [true, false]);
    // Content changed after signing: the signature (over the redacted event) holds, the hash does not: redacted.
    const edited = { ...signEvent(pdu(), "hs1.test", k1, "11"), content: { body: "evil", msgtype: "m.text" } };
    const red = await checkPduSignatures(edited, "11", keys);
    assert.ok(red.ok && red.redacted);
    assert.deepEqual(red.ok && (red.pdu as any).content, {});
    // A protected field changed: rejected.
    const moved = { ...signEvent(pdu(), "hs1.test", k1, "11"), room_id: "!other:hs1.test" };
    assert.deepEqual(await checkPduSignatures(moved, "11", keys), {
      ok: false,
      reason: "no valid signature of hs1.test",
    });
    // Signed by hs1 for a sender of hs3: hs3's signature is missing.
    const spoof = signEvent(pdu({ sender: "@bob:hs3.test" }), "hs1.test", k1, "11");
    assert.deepEqual(await checkPduSignatures(spoof, "11", keys), {
      ok: false,
      reason: "no valid signature of hs3.test",
    });
    // hs1's old key: good for an event from before its expired_ts, not after.
    const before = signEvent(pdu({ origin_server_ts: OLD_EXPIRED - 60_000 }), "hs1.test", oldKey, "11");
    assert.ok((await checkPduSignatures(before, "11", keys)).ok);
    const afterExpiry = signEvent(pdu({ origin_server_ts: OLD_EXPIRED + 1 }), "hs1.test", oldKey, "11");
    assert.equal((await checkPduSignatures(afterExpiry, "11", keys)).ok, false);
  });
});
