import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { KeyStore } from "../../auth/keys.ts";
import { challenges, credential, REALM } from "./digest.ts";

const md5 = (s: string) => createHash("md5").update(s).digest("hex");

/** What an RFC 2617 client sends (qop given: RFC 7616 style). */
function digest(user: string, pass: string, method: string, uri: string, nonce: string, qop = false): string {
  const ha1 = md5(`${user}:${REALM}:${pass}`);
  const ha2 = md5(`${method}:${uri}`);
  if (!qop)
    return `Digest username="${user}", realm="${REALM}", nonce="${nonce}", uri="${uri}", response="${md5(`${ha1}:${nonce}:${ha2}`)}"`;
  const r = md5(`${ha1}:${nonce}:00000001:abc:auth:${ha2}`);
  return `Digest username="${user}", realm="${REALM}", nonce="${nonce}", uri="${uri}", qop=auth, nc=00000001, cnonce="abc", response="${r}"`;
}

test("Digest with a key as password (any user, with or without qop) names the key; a wrong one or a stale nonce none", () => {
  const keys = () => ["sk_a", "sk_b"];
  const uri = "rtsp://h/live/cam";
  assert.deepEqual(credential(digest("any", "sk_b", "ANNOUNCE", uri, "n1"), "ANNOUNCE", "n1", keys), {
    kind: "digest",
    key: "sk_b",
  });
  assert.deepEqual(credential(digest("live/cam", "sk_a", "DESCRIBE", uri, "n1", true), "DESCRIBE", "n1", keys), {
    kind: "digest",
    key: "sk_a",
  });
  assert.deepEqual(credential(digest("u", "sk_x", "ANNOUNCE", uri, "n1"), "ANNOUNCE", "n1", keys), { kind: "digest" });
  assert.deepEqual(credential(digest("u", "sk_a", "ANNOUNCE", uri, "old"), "ANNOUNCE", "n1", keys), { kind: "digest" });
  assert.deepEqual(
    credential(digest("u", "sk_a", "SETUP", uri, "n1"), "ANNOUNCE", "n1", keys),
    { kind: "digest" },
    "method is covered",
  );
  const basic = `Basic ${Buffer.from("cam:sk_a").toString("base64")}`;
  assert.deepEqual(credential(basic, "ANNOUNCE", "n1", keys), { kind: "password", password: "sk_a" });
  assert.deepEqual(credential(undefined, "ANNOUNCE", "n1", keys), { kind: "none" });
  assert.match(challenges("n1")[0]?.[1] ?? "", /^Digest realm="ami-streams", nonce="n1"/);
});

test("keys are sealed under keys.secret: the server reads them back, keys.json alone holds no key", () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-keys-"));
  try {
    const store = new KeyStore(dir);
    const a = store.create("live/a").key;
    store.create("live/b");
    assert.deepEqual(store.secrets("live/a"), [a]);
    assert.ok(!readFileSync(join(dir, "keys.json"), "utf8").includes(a));
    rmSync(join(dir, "keys.secret"));
    assert.deepEqual(new KeyStore(dir).secrets("live/a"), [], "without the secret nothing opens");
    assert.ok(new KeyStore(dir).valid(a, "live/a"), "the hash still decides");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a Digest whose uri names another resource is refused (badUri) even with the right response", async () => {
  const { sameResource } = await import("./conn.ts");
  const keys = () => ["sk_a"];
  const req = "rtsp://127.0.0.1:8554/live/cam";
  const check = (uri: string, url = req, method = "DESCRIBE") =>
    credential(digest("u", "sk_a", method, uri, "n1"), method, "n1", keys, (x) => sameResource(x, url, "live/cam"));
  assert.deepEqual(check(req), { kind: "digest", key: "sk_a" });
  assert.deepEqual(check("rtsp://other-name/live/cam"), { kind: "digest", key: "sk_a" }, "host aside");
  assert.deepEqual(check("/live/cam"), { kind: "digest", key: "sk_a" }, "abs path");
  assert.deepEqual(check("rtsp://127.0.0.1:8554/live/other"), { kind: "digest", badUri: true });
  assert.deepEqual(check("rtsp://127.0.0.1:8554/live/cam?key=x"), { kind: "digest", badUri: true }, "query differs");
  assert.deepEqual(check("*"), { kind: "digest", badUri: true });
  // A SETUP signed with the track URL or with the presentation URL (live555/VLC); not another stream's track.
  const setup = `${req}/trackID=1`;
  assert.deepEqual(check(setup, setup, "SETUP"), { kind: "digest", key: "sk_a" });
  assert.deepEqual(check(req, setup, "SETUP"), { kind: "digest", key: "sk_a" });
  assert.deepEqual(check("rtsp://h/live/x/trackID=1", setup, "SETUP"), { kind: "digest", badUri: true });
  // No uri parameter at all.
  const noUri = digest("u", "sk_a", "DESCRIBE", req, "n1").replace(/uri="[^"]*", /, "");
  assert.deepEqual(
    credential(noUri, "DESCRIBE", "n1", keys, () => true),
    { kind: "digest", badUri: true },
  );
});
