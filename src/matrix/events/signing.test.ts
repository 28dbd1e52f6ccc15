import assert from "node:assert/strict";
import { test } from "node:test";
import { signEvent, verifyEventSignature } from "./event-signing.ts";
import {
  formatSigningKeyFile,
  generateSigningKey,
  parseSigningKeyFile,
  signatureKeyIds,
  signJson,
  verifyJsonSignature,
} from "./signing.ts";

// Spec appendix "Cryptographic Test Vectors".
const SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const key = parseSigningKeyFile(`ed25519 1 ${SEED}\n`);

test("signing key file round trip (Synapse format)", () => {
  assert.equal(key.keyId, "ed25519:1");
  assert.equal(key.seed.length, 32);
  // The spec's seed has non-zero trailing bits ("...XA1"); it re-encodes canonically as "...XA0".
  assert.equal(formatSigningKeyFile(key), "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0\n");
  assert.deepEqual(parseSigningKeyFile(formatSigningKeyFile(key)).seed, key.seed);
  const fresh = generateSigningKey();
  assert.match(fresh.keyId, /^ed25519:a_[A-Za-z]{4}$/);
  const again = parseSigningKeyFile(formatSigningKeyFile(fresh));
  assert.equal(again.keyId, fresh.keyId);
  assert.equal(again.publicKeyBase64, fresh.publicKeyBase64);
  assert.throws(() => parseSigningKeyFile(""), /empty/);
  assert.throws(() => parseSigningKeyFile("rsa 1 abc"), /expected/);
  assert.throws(() => parseSigningKeyFile("ed25519 1 Zm9v"), /32 bytes/);
});

test("spec vector: JSON signing of {}", () => {
  assert.deepEqual(signJson({}, "domain", key), {
    signatures: {
      domain: {
        "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ",
      },
    },
  });
});

test("spec vector: JSON signing of {one, two}", () => {
  assert.deepEqual(signJson({ one: 1, two: "Two" }, "domain", key), {
    one: 1,
    two: "Two",
    signatures: {
      domain: {
        "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw",
      },
    },
  });
});

test("signatures and unsigned are not covered; other signatures are kept", () => {
  const obj = { a: 1, unsigned: { age: 5 }, signatures: { other: { "ed25519:x": "sig" } } };
  const signed = signJson(obj, "domain", key);
  assert.equal(signed.signatures.other["ed25519:x"], "sig");
  assert.equal(signed.unsigned.age, 5);
  assert.deepEqual(signatureKeyIds(signed, "domain"), ["ed25519:1"]);
  assert.ok(verifyJsonSignature(signed, "domain", "ed25519:1", key.publicKeyBase64));
  assert.ok(verifyJsonSignature({ ...signed, unsigned: { age: 99 } }, "domain", "ed25519:1", key.publicKeyBase64));
  assert.ok(!("signatures" in {}), "input untouched");
  assert.deepEqual(obj.signatures, { other: { "ed25519:x": "sig" } });
});

test("verification fails (never throws) on tampering and bad input", () => {
  const signed = signJson({ one: 1 }, "domain", key);
  const pk = key.publicKeyBase64;
  assert.ok(verifyJsonSignature(signed, "domain", "ed25519:1", pk));
  assert.ok(!verifyJsonSignature({ ...signed, one: 2 }, "domain", "ed25519:1", pk));
  assert.ok(!verifyJsonSignature(signed, "other", "ed25519:1", pk));
  assert.ok(!verifyJsonSignature(signed, "domain", "ed25519:2", pk));
  assert.ok(!verifyJsonSignature(signed, "domain", "ed25519:1", generateSigningKey().publicKeyBase64));
  assert.ok(!verifyJsonSignature(signed, "domain", "ed25519:1", "not base64!"));
  assert.ok(!verifyJsonSignature({ signatures: { domain: { "ed25519:1": "AAAA" } } }, "domain", "ed25519:1", pk));
  assert.ok(!verifyJsonSignature({ x: 1.5, signatures: signed.signatures }, "domain", "ed25519:1", pk));
});

test("spec vector: signing a minimal event", () => {
  const event = {
    room_id: "!x:domain",
    sender: "@a:domain",
    origin: "domain",
    origin_server_ts: 1000000,
    signatures: {},
    hashes: {},
    type: "X",
    content: {},
    prev_events: [],
    auth_events: [],
    depth: 3,
    unsigned: { age_ts: 1000000 },
  };
  // The vectors predate v11 and use the older redaction rules, which v10 shares.
  const signed = signEvent(event, "domain", key, "10");
  assert.deepEqual(signed.hashes, { sha256: "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos" });
  assert.deepEqual(signed.signatures, {
    domain: {
      "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg",
    },
  });
  assert.deepEqual(signed.unsigned, { age_ts: 1000000 });
  assert.ok(verifyEventSignature(signed, "domain", "ed25519:1", key.publicKeyBase64, "10"));
});

test("spec vector: signing an event with redactable content", () => {
  const event = {
    content: { body: "Here is the message content" },
    event_id: "$0:domain",
    origin: "domain",
    origin_server_ts: 1000000,
    type: "m.room.message",
    room_id: "!r:domain",
    sender: "@u:domain",
    signatures: {},
    unsigned: { age_ts: 1000000 },
  };
  const signed = signEvent(event, "domain", key, "10");
  assert.deepEqual(signed.hashes, { sha256: "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g" });
  assert.deepEqual(signed.signatures, {
    domain: {
      "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA",
    },
  });
  // Signatures cover the redacted form: editing the body keeps the signature valid (the hash catches it).
  const edited = { ...signed, content: { body: "changed" } };
  assert.ok(verifyEventSignature(edited, "domain", "ed25519:1", key.publicKeyBase64, "10"));
  assert.ok(
    !verifyEventSignature({ ...signed, sender: "@x:domain" }, "domain", "ed25519:1", key.publicKeyBase64, "10"),
  );
});
