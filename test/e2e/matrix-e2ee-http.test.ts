/**
 * E2EE server support over plain HTTP, on SQLite and PostgreSQL: key upload/query/claim (20 concurrent claims
 * never share a key), cross-signing with UIA, to-device delivery and acknowledgement, device-list changes,
 * key backup CRUD, and bad input answered with the right errcode. Responses are checked against the spec.
 */
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, randomBytes, sign } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { unpaddedBase64 } from "../../src/matrix/events/base64.ts";
import { canonicalJsonBytes } from "../../src/matrix/events/canonical-json.ts";
import { type RunningHomeserver, startHomeserver } from "../../src/matrix/homeserver.ts";
import { e2eeSync } from "../../src/matrix/service/sync/e2ee.ts";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { api, loginUser, ok, registerUser, type Session } from "./helpers/client.ts";
import { BACKENDS, createTestDatabase, type TestDatabase, tempDir, testMatrixConfig } from "./helpers/homeserver.ts";

const PKCS8 = Buffer.from("302e020100300506032b657004220420", "hex");

/** An Ed25519 key that signs JSON the Matrix way (canonical JSON without signatures/unsigned). */
function edKey() {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8, randomBytes(32)]), format: "der", type: "pkcs8" });
  const der = createPublicKey(priv).export({ format: "der", type: "spki" });
  const pub = unpaddedBase64(der.subarray(der.length - 32));
  return {
    pub,
    sign<T extends Record<string, any>>(obj: T, userId: string, keyId: string): T {
      const { signatures, unsigned: _u, ...rest } = obj;
      const sig = unpaddedBase64(sign(null, canonicalJsonBytes(rest), priv));
      return { ...obj, signatures: { ...signatures, [userId]: { ...signatures?.[userId], [keyId]: sig } } };
    },
  };
}

function deviceKeys(s: Session, key = edKey()) {
  const dk = {
    user_id: s.userId,
    device_id: s.deviceId,
    algorithms: ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
    keys: { [`curve25519:${s.deviceId}`]: unpaddedBase64(randomBytes(32)), [`ed25519:${s.deviceId}`]: key.pub },
  };
  return key.sign(dk, s.userId, `ed25519:${s.deviceId}`);
}

const K = "/_matrix/client/v3/keys";
const PASSWORD = "correct horse battery";

for (const backend of BACKENDS) {
  describe(`E2EE server support over HTTP (${backend})`, () => {
    let running: RunningHomeserver;
    let db: TestDatabase;
    let dir: string;
    let url = "";
    let alice: Session;
    let bob: Session;
    let roomId = "";
    const call = (s: Session | null, method: string, path: string, body?: unknown) =>
      api(url, method, path, { token: s?.accessToken, body });

    before(async () => {
      dir = tempDir();
      db = await createTestDatabase(backend, dir);
      const config = configSchema.parse({ matrix: testMatrixConfig({ database: db.database }) });
      running = await startHomeserver(config.matrix, dir, silentLogger);
      url = running.url;
      const u = randomBytes(3).toString("hex");
      alice = await registerUser(url, `alice${u}`, PASSWORD);
      bob = await registerUser(url, `bob${u}`, PASSWORD);
      roomId = (
        await ok(url, "POST", "/_matrix/client/v3/createRoom", {
          token: alice.accessToken,
          body: { invite: [bob.userId] },
        })
      ).room_id;
      await ok(url, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {
        token: bob.accessToken,
        body: {},
      });
    });
    after(async () => {
      await running?.close();
      await db?.drop();
    });

    it("keys/upload stores device keys and one-time keys; keys/query returns them", async () => {
      const up = await call(alice, "POST", `${K}/upload`, {
        device_keys: deviceKeys(alice),
        one_time_keys: Object.fromEntries(
          Array.from({ length: 15 }, (_, i) => [`signed_curve25519:K${i}`, { key: `k${i}`, signatures: {} }]),
        ),
        fallback_keys: { "signed_curve25519:FB": { key: "fb", fallback: true, signatures: {} } },
      });
      assert.equal(up.status, 200, up.text);
      assertSpec("keys.yaml", "/keys/upload", "POST", 200, up.json);
      assert.equal(up.json.one_time_key_counts.signed_curve25519, 15);
      const q = await call(bob, "POST", `${K}/query`, { device_keys: { [alice.userId]: [], "@nobody:localhost": [] } });
      assert.equal(q.status, 200, q.text);
      assertSpec("keys.yaml", "/keys/query", "POST", 200, q.json);
      assert.deepEqual(Object.keys(q.json.device_keys[alice.userId]), [alice.deviceId]);
      assert.deepEqual(q.json.device_keys["@nobody:localhost"], {}, "unknown users: no devices, not an error");
    });

    it("20 concurrent claims: 15 distinct one-time keys, then the fallback key", async () => {
      const claim = () =>
        call(bob, "POST", `${K}/claim`, {
          one_time_keys: { [alice.userId]: { [alice.deviceId]: "signed_curve25519" } },
        });
      const rs = await Promise.all(Array.from({ length: 20 }, claim));
      const ids: string[] = [];
      for (const r of rs) {
        assert.equal(r.status, 200, r.text);
        assertSpec("keys.yaml", "/keys/claim", "POST", 200, r.json);
        ids.push(...Object.keys(r.json.one_time_keys[alice.userId][alice.deviceId]));
      }
      const otks = ids.filter((i) => i !== "signed_curve25519:FB");
      assert.equal(otks.length, 15);
      assert.equal(new Set(otks).size, 15, "no one-time key handed out twice");
      assert.equal(ids.length - otks.length, 5, "the rest got the fallback key");
      const e = await e2eeSync(
        running.hs,
        { ...alice, isAdmin: false, tokenHash: "" },
        null,
        running.hs.stream.current,
      );
      assert.equal(e.device_one_time_keys_count.signed_curve25519, 0);
      assert.deepEqual(e.device_unused_fallback_key_types, []);
    });

    it("bad input: malformed uploads, unknown users and devices, oversized to-device", async () => {
      const bad = async (s: Session, method: string, path: string, body: unknown, status: number, errcode: string) => {
        const r = await call(s, method, path, body);
        assert.equal(r.status, status, `${path} ${JSON.stringify(body).slice(0, 80)} -> ${r.text}`);
        assert.equal(r.json?.errcode, errcode);
      };
      await bad(alice, "POST", `${K}/upload`, { device_keys: deviceKeys(bob) }, 400, "M_INVALID_PARAM");
      const forged = { ...deviceKeys(alice), algorithms: ["tampered"] };
      await bad(alice, "POST", `${K}/upload`, { device_keys: forged }, 400, "M_INVALID_SIGNATURE");
      await bad(alice, "POST", `${K}/upload`, { one_time_keys: { nocolon: "x" } }, 400, "M_BAD_JSON");
      await bad(alice, "POST", `${K}/upload`, { one_time_keys: { "signed_curve25519:A": 5 } }, 400, "M_BAD_JSON");
      await bad(alice, "POST", `${K}/upload`, { device_keys: "nope" }, 400, "M_BAD_JSON");
      await ok(url, "POST", `${K}/upload`, {
        token: alice.accessToken,
        body: { one_time_keys: { "curve25519:X": "one" } },
      });
      await bad(alice, "POST", `${K}/upload`, { one_time_keys: { "curve25519:X": "two" } }, 400, "M_INVALID_PARAM");
      await bad(alice, "POST", `${K}/claim`, { one_time_keys: { [alice.userId]: "x" } }, 400, "M_BAD_JSON");
      await bad(alice, "POST", `${K}/query`, { device_keys: [] }, 400, "M_BAD_JSON");
      const unknown = await ok(url, "POST", `${K}/claim`, {
        token: bob.accessToken,
        body: {
          one_time_keys: {
            "@ghost:localhost": { X: "signed_curve25519" },
            [alice.userId]: { NODEVICE: "signed_curve25519" },
          },
        },
      });
      assert.deepEqual(unknown, { failures: {}, one_time_keys: {} });
      const td = "/_matrix/client/v3/sendToDevice/m.test";
      assert.deepEqual(
        await ok(url, "PUT", `${td}/t-ghost`, {
          token: bob.accessToken,
          body: { messages: { "@ghost:localhost": { "*": { a: 1 } } } },
        }),
        {},
      );
      await bad(
        bob,
        "PUT",
        `${td}/t-big`,
        { messages: { [alice.userId]: { "*": { pad: "x".repeat(70_000) } } } },
        413,
        "M_TOO_LARGE",
      );
      await bad(
        bob,
        "PUT",
        `${td}/t-bad`,
        { messages: { [alice.userId]: { "*": "not an object" } } },
        400,
        "M_BAD_JSON",
      );
      assert.equal((await call(alice, "GET", "/_matrix/client/versions")).status, 200, "the server is still up");
    });

    it("to-device: idempotent per txnId, delivered until the since token moves past it, then gone", async () => {
      const td = "/_matrix/client/v3/sendToDevice/m.test";
      const start = running.hs.stream.current;
      const msg = { messages: { [alice.userId]: { "*": { n: 1 } } } };
      await ok(url, "PUT", `${td}/txn1`, { token: bob.accessToken, body: msg });
      await ok(url, "PUT", `${td}/txn1`, { token: bob.accessToken, body: msg });
      const req = { ...alice, isAdmin: false, tokenHash: "" };
      const upto = running.hs.stream.current;
      const first = await e2eeSync(running.hs, req, start, upto);
      assert.deepEqual(first.to_device.events, [{ sender: bob.userId, type: "m.test", content: { n: 1 } }]);
      assert.equal(first.empty, false);
      assert.equal((await e2eeSync(running.hs, req, start, upto)).to_device.events.length, 1, "not acked yet");
      assert.deepEqual((await e2eeSync(running.hs, req, upto, upto)).to_device.events, [], "acked by since");
    });

    it("keys/changes and device_lists: a new device of Alice shows up for Bob", async () => {
      const before = running.hs.stream.current;
      const alice2 = await loginUser(url, alice.userId, PASSWORD);
      await ok(url, "POST", `${K}/upload`, { token: alice2.accessToken, body: { device_keys: deviceKeys(alice2) } });
      const upto = running.hs.stream.current;
      const ch = await ok(url, "GET", `${K}/changes?from=s${before}_0&to=s${upto}_0`, { token: bob.accessToken });
      assertSpec("keys.yaml", "/keys/changes", "GET", 200, ch);
      assert.ok(ch.changed.includes(alice.userId), JSON.stringify(ch));
      const e = await e2eeSync(running.hs, { ...bob, isAdmin: false, tokenHash: "" }, before, upto);
      assert.ok(e.device_lists.changed.includes(alice.userId));
      const q = await ok(url, "POST", `${K}/query`, {
        token: bob.accessToken,
        body: { device_keys: { [alice.userId]: [] } },
      });
      assert.ok(q.device_keys[alice.userId][alice2.deviceId]);
    });

    it("cross-signing: first upload without UIA, replacement needs the password; signatures upload", async () => {
      const master = edKey();
      const ssk = edKey();
      const csKey = (k: ReturnType<typeof edKey>, usage: string) => ({
        user_id: alice.userId,
        usage: [usage],
        keys: { [`ed25519:${k.pub}`]: k.pub },
      });
      const masterKey = csKey(master, "master");
      const sskKey = master.sign(csKey(ssk, "self_signing"), alice.userId, `ed25519:${master.pub}`);
      const path = `${K}/device_signing/upload`;
      const first = await call(alice, "POST", path, { master_key: masterKey, self_signing_key: sskKey });
      assert.equal(first.status, 200, first.text);
      assert.equal((await call(alice, "POST", path, { master_key: masterKey })).status, 200, "same keys: idempotent");
      const master2 = csKey(edKey(), "master");
      const challenge = await call(alice, "POST", path, { master_key: master2 });
      assert.equal(challenge.status, 401);
      const auth = {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: alice.userId },
        password: PASSWORD,
        session: challenge.json.session,
      };
      assert.equal(
        (await call(alice, "POST", path, { master_key: master2, auth: { ...auth, password: "wrong" } })).status,
        401,
      );
      const unsigned = csKey(edKey(), "self_signing");
      const badSsk = await call(alice, "POST", path, { self_signing_key: unsigned });
      assert.equal(badSsk.status, 401, "changing keys needs UIA before anything else");
      // Restore the first set with the password, then sign a device with the self-signing key.
      const done = await call(alice, "POST", path, { master_key: masterKey, self_signing_key: sskKey, auth });
      assert.equal(done.status, 200, done.text);
      const dk = (
        await ok(url, "POST", `${K}/query`, {
          token: alice.accessToken,
          body: { device_keys: { [alice.userId]: [alice.deviceId] } },
        })
      ).device_keys[alice.userId][alice.deviceId];
      const { unsigned: _u, ...plain } = dk;
      const signed = ssk.sign(plain, alice.userId, `ed25519:${ssk.pub}`);
      const su = await ok(url, "POST", `${K}/signatures/upload`, {
        token: alice.accessToken,
        body: { [alice.userId]: { [alice.deviceId]: signed, BOGUS: signed } },
      });
      assertSpec("cross_signing.yaml", "/keys/signatures/upload", "POST", 200, su);
      assert.deepEqual(Object.keys(su.failures[alice.userId] ?? {}), ["BOGUS"]);
      const q = await ok(url, "POST", `${K}/query`, {
        token: bob.accessToken,
        body: { device_keys: { [alice.userId]: [] } },
      });
      assertSpec("keys.yaml", "/keys/query", "POST", 200, q);
      assert.equal(q.master_keys[alice.userId].keys[`ed25519:${master.pub}`], master.pub);
      assert.ok(q.self_signing_keys[alice.userId]);
      assert.equal(q.user_signing_keys[alice.userId], undefined, "user-signing keys only for oneself");
      assert.ok(q.device_keys[alice.userId][alice.deviceId].signatures[alice.userId][`ed25519:${ssk.pub}`]);
    });

    it("key backup: versions and keys CRUD with etag and count", async () => {
      const V = "/_matrix/client/v3/room_keys/version";
      const KB = "/_matrix/client/v3/room_keys/keys";
      const none = await call(bob, "GET", V);
      assert.equal(none.status, 404);
      assert.equal(none.json.errcode, "M_NOT_FOUND");
      const alg = "m.megolm_backup.v1.curve25519-aes-sha2";
      const created = await ok(url, "POST", V, {
        token: bob.accessToken,
        body: { algorithm: alg, auth_data: { public_key: "p" } },
      });
      assertSpec("key_backup.yaml", "/room_keys/version", "POST", 200, created);
      const v = created.version;
      const data = {
        first_message_index: 0,
        forwarded_count: 0,
        is_verified: false,
        session_data: { ciphertext: "c" },
      };
      const put = await ok(url, "PUT", `${KB}?version=${v}`, {
        token: bob.accessToken,
        body: { rooms: { [roomId]: { sessions: { s1: data, s2: data } } } },
      });
      assertSpec("key_backup.yaml", "/room_keys/keys", "PUT", 200, put);
      assert.equal(put.count, 2);
      const info = await ok(url, "GET", V, { token: bob.accessToken });
      assertSpec("key_backup.yaml", "/room_keys/version", "GET", 200, info);
      assert.equal(info.etag, put.etag);
      const one = await ok(url, "GET", `${KB}/${encodeURIComponent(roomId)}/s1?version=${v}`, {
        token: bob.accessToken,
      });
      assert.deepEqual(one, data);
      const room = await ok(url, "GET", `${KB}/${encodeURIComponent(roomId)}?version=${v}`, { token: bob.accessToken });
      assertSpec("key_backup.yaml", "/room_keys/keys/{roomId}", "GET", 200, room);
      const all = await ok(url, "GET", `${KB}?version=${v}`, { token: bob.accessToken });
      assertSpec("key_backup.yaml", "/room_keys/keys", "GET", 200, all);
      const del = await ok(url, "DELETE", `${KB}/${encodeURIComponent(roomId)}/s2?version=${v}`, {
        token: bob.accessToken,
      });
      assert.equal(del.count, 1);
      assert.notEqual(del.etag, put.etag);
      const v2 = (await ok(url, "POST", V, { token: bob.accessToken, body: { algorithm: alg, auth_data: {} } }))
        .version;
      const wrong = await call(bob, "PUT", `${KB}?version=${v}`, { rooms: {} });
      assert.equal(wrong.status, 403);
      assert.equal(wrong.json.errcode, "M_WRONG_ROOM_KEYS_VERSION");
      assert.equal(wrong.json.current_version, v2);
      assert.equal((await call(bob, "GET", `${KB}?version=999`)).status, 404);
      assert.equal(
        (
          await call(bob, "PUT", `${KB}?version=${v2}`, {
            rooms: { [roomId]: { sessions: { s: { ...data, is_verified: "yes" } } } },
          })
        ).json.errcode,
        "M_BAD_JSON",
      );
      assert.deepEqual(await ok(url, "DELETE", `${V}/${v2}`, { token: bob.accessToken }), {});
      assert.equal((await ok(url, "GET", V, { token: bob.accessToken })).version, v);
    });
  });
}
