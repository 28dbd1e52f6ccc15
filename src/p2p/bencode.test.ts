import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { decode, decodeAt, decodeSpan, encode } from "./bencode.ts";

test("encodes BEP 3's examples and sorts dictionary keys by their bytes", () => {
  assert.equal(encode("spam").toString(), "4:spam");
  assert.equal(encode(3).toString(), "i3e");
  assert.equal(encode(-3).toString(), "i-3e");
  assert.equal(encode(["spam", "eggs"]).toString(), "l4:spam4:eggse");
  assert.equal(encode({ spam: ["a", "b"], cow: "moo" }).toString(), "d3:cow3:moo4:spaml1:a1:bee");
  assert.equal(encode({ b: 1, a: undefined, Z: 2 }).toString(), "d1:Zi2e1:bi1ee");
  assert.equal(encode(2n ** 60n).toString(), `i${2n ** 60n}e`);
});

test("decodes what it encodes, byte strings as Buffers and keys as latin1", () => {
  const raw = Buffer.from([0xff, 0x00, 0x80]);
  const key = Buffer.from("ファイル", "utf8").toString("latin1");
  const v = decode(encode({ [key]: raw, n: 42, l: [1, "x"] })) as Record<string, unknown>;
  assert.deepEqual(v[key], raw);
  assert.equal(
    Buffer.from(Object.keys(v).find((k) => k !== "n" && k !== "l") ?? "", "latin1").toString("utf8"),
    "ファイル",
  );
  assert.equal(v.n, 42);
  assert.deepEqual(v.l, [1, Buffer.from("x")]);
});

test("rejects non-canonical and malformed input with AMI_INVALID_INPUT", () => {
  for (const bad of [
    "i03e",
    "i-0e",
    "ie",
    "i1",
    "03:abc",
    "5:abc",
    "l",
    "d1:ai1e",
    "d1:ai1e1:ai2ee",
    "x",
    "i1ei2e",
    "i99999999999999999e",
    "",
  ]) {
    assert.throws(
      () => decode(Buffer.from(bad)),
      (e: { code?: string }) => e.code === "AMI_INVALID_INPUT",
      bad,
    );
  }
  assert.throws(() => decode(Buffer.from(`${"l".repeat(100)}${"e".repeat(100)}`)), /too deep/);
});

test("decodeAt stops after one value (BEP 9 data follows its dictionary); decodeSpan finds the info bytes", () => {
  const msg = Buffer.concat([encode({ msg_type: 1, piece: 0 }), Buffer.from("RAW")]);
  const { end } = decodeAt(msg, 0);
  assert.equal(msg.subarray(end).toString(), "RAW");
  const info = { length: 5, name: "a", "piece length": 16384, pieces: Buffer.alloc(20) };
  const torrent = encode({ announce: "http://t/", info });
  const span = decodeSpan(torrent, "info");
  assert.ok(span);
  const hash = createHash("sha1").update(torrent.subarray(span.start, span.end)).digest("hex");
  assert.equal(hash, createHash("sha1").update(encode(info)).digest("hex"));
  assert.equal(decodeSpan(torrent, "nope"), undefined);
});
