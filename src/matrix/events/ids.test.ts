import assert from "node:assert/strict";
import { test } from "node:test";
import {
  isValidEventId,
  isValidLocalpart,
  isValidRoomAlias,
  isValidRoomId,
  isValidServerName,
  isValidUserId,
  parseUserId,
  randomString,
  serverNameOf,
} from "./ids.ts";
import { isSupportedRoomVersion, roomVersionsCapability, SUPPORTED_ROOM_VERSIONS } from "./room-versions.ts";

test("server names from the spec's examples", () => {
  for (const s of [
    "matrix.org",
    "matrix.org:8888",
    "1.2.3.4",
    "1.2.3.4:1234",
    "[1234:5678::abcd]",
    "[1234:5678::abcd]:5678",
    "localhost",
  ]) {
    assert.ok(isValidServerName(s), s);
  }
  for (const s of [
    "",
    "matrix.org:",
    "matrix.org:99999",
    "1234:5678::abcd",
    "exa mple.org",
    "ex_ample.org",
    "[zz::1]",
    "a/b",
  ]) {
    assert.ok(!isValidServerName(s), s);
  }
});

test("user IDs: parsing accepts historical localparts, new registrations do not", () => {
  assert.deepEqual(parseUserId("@alice:example.org"), { localpart: "alice", server: "example.org" });
  assert.deepEqual(parseUserId("@Alice!:example.org:8448"), { localpart: "Alice!", server: "example.org:8448" });
  assert.ok(isValidUserId("@a.b_c=d-e/f+g:x.org"));
  assert.ok(!isValidUserId("@Alice:x.org"));
  for (const bad of ["alice:x", "@alice", "@al\u0000ice:x", "@alice:bad host", `@${"a".repeat(250)}:x.org`, "@a:"]) {
    assert.equal(parseUserId(bad), null, bad);
  }
  assert.ok(parseUserId(`@${"a".repeat(245)}:x.org`), "exactly 255 bytes is fine");
  assert.equal(parseUserId(`@${"é".repeat(125)}:x.org`), null, "limit counts bytes, not characters");
});

test("localparts for new registrations", () => {
  for (const ok of ["alice", "a.b_c=d-e/f+g", "0123"]) assert.ok(isValidLocalpart(ok), ok);
  for (const bad of ["", "Alice", "al ice", "al:ice", "élodie", "a*b"]) assert.ok(!isValidLocalpart(bad), bad);
});

test("room IDs, aliases and event IDs", () => {
  assert.ok(isValidRoomId("!AbCdEf:example.org"));
  assert.ok(!isValidRoomId("!:example.org"));
  assert.ok(!isValidRoomId("AbCd:example.org"));
  assert.ok(!isValidRoomId("!AbCd"));
  assert.ok(isValidRoomAlias("#room:example.org"));
  assert.ok(isValidRoomAlias("#日本:example.org"));
  assert.ok(!isValidRoomAlias("#room"));
  assert.ok(!isValidRoomAlias("#:example.org"));
  assert.ok(!isValidRoomAlias(`#${"r".repeat(250)}:example.org`));
  assert.ok(isValidEventId("$R3MsC_83DLVmP6v1s1auNK7RrNaeqwlAeVg5CjnZ808"));
  assert.ok(isValidEventId("$legacy:example.org"));
  assert.ok(!isValidEventId("$"));
  assert.ok(!isValidEventId("event"));
  assert.ok(!isValidEventId(`$${"a".repeat(255)}`));
});

test("serverNameOf", () => {
  assert.equal(serverNameOf("@a:example.org"), "example.org");
  assert.equal(serverNameOf("!r:example.org:8448"), "example.org:8448");
  assert.equal(serverNameOf("#a:[::1]:80"), "[::1]:80");
  assert.equal(serverNameOf("$legacy:example.org"), "example.org");
  assert.equal(serverNameOf("$R3MsC_83DLVmP6v1s1auNK7RrNaeqwlAeVg5CjnZ808"), null);
  assert.equal(serverNameOf("example.org"), null);
  assert.equal(serverNameOf(""), null);
});

test("randomString: letters only, right length, not repeating", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const s = randomString(18);
    assert.match(s, /^[A-Za-z]{18}$/);
    seen.add(s);
  }
  assert.equal(seen.size, 200);
  assert.equal(randomString(0), "");
  // Every letter shows up in a long sample (a biased or truncated alphabet would miss some).
  assert.equal(new Set(randomString(5000)).size, 52);
});

test("room versions", () => {
  assert.deepEqual([...SUPPORTED_ROOM_VERSIONS], ["10", "11", "12"]);
  assert.ok(isSupportedRoomVersion("12") && !isSupportedRoomVersion("9") && !isSupportedRoomVersion("13"));
  assert.deepEqual(roomVersionsCapability(), {
    default: "10",
    available: { "10": "stable", "11": "stable", "12": "stable" },
  });
});
