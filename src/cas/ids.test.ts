import assert from "node:assert/strict";
import { test } from "node:test";
import { base32Lower, cidFromSha256, sha256FromCid, sha256Hex, sha256HexAsync } from "./ids.ts";
import { chunksInRange, decodeManifest, encodeManifest, manifestId } from "./manifest.ts";

test("base32 is RFC 4648's alphabet, lower case, unpadded", () => {
  const v: [string, string][] = [
    ["", ""],
    ["f", "my"],
    ["fo", "mzxq"],
    ["foo", "mzxw6"],
    ["foob", "mzxw6yq"],
    ["fooba", "mzxw6ytb"],
    ["foobar", "mzxw6ytboi"],
  ];
  for (const [i, o] of v) assert.equal(base32Lower(Buffer.from(i)), o);
});

test("CIDv1 raw sha2-256: the known CID of 'hello world\\n', and back", async () => {
  const sha = sha256Hex(Buffer.from("hello world\n"));
  assert.equal(await sha256HexAsync(Buffer.from("hello world\n")), sha);
  const cid = cidFromSha256(sha);
  assert.equal(cid, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4");
  assert.equal(sha256FromCid(cid), sha);
  assert.equal(sha256FromCid("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"), undefined); // dag-pb
});

test("manifests: canonical bytes, id = their hash, tampering and non-canonical forms rejected", () => {
  const m = {
    size: 5,
    sha256: "a".repeat(64),
    params: { min: 1, avg: 2, max: 4 },
    chunks: [
      ["b".repeat(64), 2],
      ["c".repeat(64), 3],
    ] as [string, number][],
  };
  const bytes = encodeManifest(m);
  const id = manifestId(bytes);
  assert.deepEqual(decodeManifest(id, bytes), m);
  assert.throws(() => decodeManifest(id, Buffer.from(bytes.toString().replace('"size":5', '"size":6'))), /corrupt/);
  const spaced = Buffer.from(bytes.toString().replace(",", ", "));
  assert.throws(() => decodeManifest(manifestId(spaced), spaced), /not canonical/);
  assert.deepEqual(
    [...chunksInRange(m, 1, 4)].map((c) => [c.from, c.to]),
    [
      [1, 2],
      [0, 2],
    ],
  );
});
