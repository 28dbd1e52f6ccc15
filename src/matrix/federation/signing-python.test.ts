/**
 * Our canonical JSON, JSON signatures and X-Matrix request signatures cross-checked against Synapse's own
 * libraries as Debian ships them (python3-signedjson, python3-canonicaljson): we sign, Python verifies; Python
 * signs, we verify; both encode the same objects to the same bytes; and Python reproduces the spec appendix's
 * signing test vectors from the same seed as our signing.test.ts does.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { decodeBase64, unpaddedBase64 } from "../events/base64.ts";
import { canonicalJson } from "../events/canonical-json.ts";
import { generateSigningKey, parseSigningKeyFile, signJson, verifyJsonSignature } from "../events/signing.ts";
import { parseXMatrix, signRequest, verifyRequestSignature } from "./x-matrix.ts";

// Debian's interpreter: the packages live in /usr/lib/python3/dist-packages, which a pyenv python does not see.
const PYTHON = "/usr/bin/python3";

const PY = `
import sys, json, base64
import canonicaljson, signedjson.key, signedjson.sign
from unpaddedbase64 import decode_base64, encode_base64
req = json.loads(sys.stdin.read())
out = {}
key = signedjson.key.decode_signing_key_base64("ed25519", req["version"], req["seed"])
out["public"] = encode_base64(key.verify_key.encode())
out["canonical"] = [canonicaljson.encode_canonical_json(o).decode("utf-8") for o in req["objects"]]
out["signed"] = [signedjson.sign.sign_json(dict(o), req["server"], key) for o in req["objects"]]
ok = []
for item in req["verify"]:
    vk = signedjson.key.decode_verify_key_bytes("ed25519:" + item["version"], decode_base64(item["public"]))
    try:
        signedjson.sign.verify_signed_json(item["obj"], item["server"], vk)
        ok.append(True)
    except signedjson.sign.SignatureVerifyException:
        ok.append(False)
out["verified"] = ok
print(json.dumps(out))
`;

function python(input: unknown): any {
  const out = execFileSync(PYTHON, ["-c", PY], { input: JSON.stringify(input), encoding: "utf8" });
  return JSON.parse(out);
}

// Spec appendix "Cryptographic test vectors": this seed signs {} and {one, two} to these signatures.
const SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const SPEC_SIGS = [
  "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ",
  "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw",
];

const OBJECTS: Record<string, unknown>[] = [
  {},
  { one: 1, two: "Two" },
  { b: [1, -2, 9007199254740991, -9007199254740991, true, false, null], a: { z: "", y: { x: [] } } },
  { 日本語: "\u65E5\u672C\u8A9E", é: "é", "\u{1F600}": "astral", "\uE000": "private use", a: '\u0001\u001f"\\/\n\t' },
  { unsigned: { age: 1 }, content: { body: "x".repeat(300), "m.relates_to": { rel_type: "m.thread" } } },
];

test("canonical JSON: ours equals python3-canonicaljson byte for byte", () => {
  const py = python({ version: "1", seed: SPEC_SEED, server: "domain", objects: OBJECTS, verify: [] });
  assert.deepEqual(
    OBJECTS.map((o) => canonicalJson(o)),
    py.canonical,
  );
});

test("spec vectors: python3-signedjson gives the appendix signatures from the appendix seed, as we do", () => {
  const key = parseSigningKeyFile(`ed25519 1 ${SPEC_SEED}\n`);
  const py = python({ version: "1", seed: SPEC_SEED, server: "domain", objects: OBJECTS.slice(0, 2), verify: [] });
  assert.equal(py.public, key.publicKeyBase64);
  assert.deepEqual(
    py.signed.map((o: any) => o.signatures.domain["ed25519:1"]),
    SPEC_SIGS,
  );
  assert.deepEqual(
    OBJECTS.slice(0, 2).map((o) => signJson(o, "domain", key).signatures.domain["ed25519:1"]),
    SPEC_SIGS,
  );
});

test("signatures both ways: python verifies ours and we verify python's; tampered ones fail on both sides", () => {
  const key = generateSigningKey();
  const version = key.keyId.slice("ed25519:".length);
  const ours = OBJECTS.map((o) => signJson(o, "hs1.test", key));
  const tampered = { ...ours[2], b: [1] };
  const py = python({
    version,
    seed: unpaddedBase64(key.seed),
    server: "hs1.test",
    objects: OBJECTS,
    verify: [...ours, tampered].map((obj) => ({ obj, server: "hs1.test", version, public: key.publicKeyBase64 })),
  });
  assert.deepEqual(py.verified, [...ours.map(() => true), false]);
  // Ed25519 is deterministic: the same key signs the same bytes to the same signature.
  assert.deepEqual(
    py.signed.map((o: any) => o.signatures["hs1.test"][key.keyId]),
    ours.map((o) => o.signatures["hs1.test"][key.keyId]),
  );
  for (const o of py.signed) assert.ok(verifyJsonSignature(o, "hs1.test", key.keyId, key.publicKeyBase64));
  assert.ok(!verifyJsonSignature({ ...py.signed[1], one: 2 }, "hs1.test", key.keyId, key.publicKeyBase64));
});

test("X-Matrix: the signed request object is what signedjson signs (Synapse's verify_request_signature input)", () => {
  const key = generateSigningKey();
  const version = key.keyId.slice("ed25519:".length);
  const request = {
    method: "PUT",
    uri: "/_matrix/federation/v1/send/txn1?x=%20y",
    origin: "hs1.test",
    destination: "hs2.test",
    content: { pdus: [], edus: [{ edu_type: "m.typing", content: {} }] },
  };
  const header = signRequest(request, key);
  const auth = parseXMatrix(header);
  assert.equal(auth.origin, "hs1.test");
  assert.equal(auth.destination, "hs2.test");
  assert.equal(auth.key, key.keyId);
  // Synapse verifies {method, uri, origin, destination, content, signatures: {origin: {key: sig}}} with signedjson.
  const obj = { ...request, signatures: { "hs1.test": { [key.keyId]: auth.sig } } };
  const py = python({
    version,
    seed: unpaddedBase64(key.seed),
    server: "hs1.test",
    objects: [request],
    verify: [
      { obj, server: "hs1.test", version, public: key.publicKeyBase64 },
      { obj: { ...obj, uri: "/other" }, server: "hs1.test", version, public: key.publicKeyBase64 },
    ],
  });
  assert.deepEqual(py.verified, [true, false]);
  // And a request python signed verifies with our X-Matrix check.
  const pySig = py.signed[0].signatures["hs1.test"][key.keyId];
  assert.equal(decodeBase64(pySig).length, 64);
  assert.ok(verifyRequestSignature(request, { ...auth, sig: pySig }, key.publicKeyBase64));
  assert.ok(!verifyRequestSignature({ ...request, method: "POST" }, { ...auth, sig: pySig }, key.publicKeyBase64));
});
