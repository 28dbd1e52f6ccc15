import assert from "node:assert/strict";
import { test } from "node:test";
import { checkContentHash, contentHash, eventIdFor, referenceHash } from "./hashing.ts";

// Expected values computed independently with Python's json.dumps(sort_keys, ensure_ascii=False) + hashlib.
const EVENT = {
  auth_events: ["$a", "$b"],
  content: { body: "hi", msgtype: "m.text" },
  depth: 5,
  hashes: { sha256: "xyz" },
  origin: "example.org",
  origin_server_ts: 1700000000000,
  prev_events: ["$p"],
  room_id: "!r:example.org",
  sender: "@u:example.org",
  type: "m.room.message",
  signatures: { "example.org": { "ed25519:1": "s" } },
  unsigned: { age: 1 },
};

test("content hash ignores unsigned, signatures and hashes", () => {
  assert.equal(contentHash(EVENT), "UARvh9NXafqUtz+F+M6fOJws+/DOvVZZ3Qg9cmW1jbQ");
  assert.equal(contentHash({ ...EVENT, unsigned: {}, signatures: {}, hashes: {} }), contentHash(EVENT));
  assert.notEqual(contentHash({ ...EVENT, content: { body: "ho" } }), contentHash(EVENT));
});

test("event IDs for v10 and v11 (v11 no longer covers 'origin')", () => {
  assert.equal(eventIdFor(EVENT, "10"), "$R3MsC_83DLVmP6v1s1auNK7RrNaeqwlAeVg5CjnZ808");
  assert.equal(eventIdFor(EVENT, "11"), "$EU_hvw27ll5JrGFIRONs85z1iZaMp3bpJsz4L8XVNkY");
  assert.match(eventIdFor(EVENT, "11"), /^\$[A-Za-z0-9_-]{43}$/);
  assert.equal(referenceHash(EVENT, "10").length, 32);
});

test("reference hash covers the redacted event only", () => {
  const id = eventIdFor(EVENT, "11");
  // Redacted-away content, signatures, unsigned and an attached event_id do not change the ID...
  assert.equal(eventIdFor({ ...EVENT, content: { body: "other" } }, "11"), id);
  assert.equal(eventIdFor({ ...EVENT, signatures: {}, unsigned: { x: 1 } }, "11"), id);
  assert.equal(eventIdFor({ ...EVENT, event_id: id }, "11"), id);
  assert.equal(eventIdFor({ ...EVENT, origin: "elsewhere" }, "11"), id);
  // ...but the hashes (which commit to the content) and the protected keys do.
  assert.notEqual(eventIdFor({ ...EVENT, hashes: { sha256: "abc" } }, "11"), id);
  assert.notEqual(eventIdFor({ ...EVENT, depth: 6 }, "11"), id);
  assert.notEqual(eventIdFor({ ...EVENT, origin: "elsewhere" }, "10"), eventIdFor(EVENT, "10"));
});

test("checkContentHash", () => {
  const ok = { ...EVENT, hashes: { sha256: contentHash(EVENT) } };
  assert.ok(checkContentHash(ok));
  assert.ok(!checkContentHash({ ...ok, content: { body: "tampered" } }));
  assert.ok(!checkContentHash({ ...EVENT, hashes: {} }));
});
