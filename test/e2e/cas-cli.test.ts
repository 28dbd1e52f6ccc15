/** `ami-streams cas ...` through the real CLI on a temp home, a bit flipped on disk, and the cas tools over MCP stdio. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { closeSync, openSync, readdirSync, readFileSync, readSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { openStoreAt } from "../../src/cas/open.ts";
import { prngBytes } from "../../src/core/prng.ts";
import { binEntry, cli, json, tempHome } from "../../src/test/cli.ts";

const h = tempHome({ matrix: { enabled: false }, media: { enabled: false }, web: { enabled: false } });
after(() => h.cleanup());
const run = (...args: string[]) => cli(args, { env: h.env });
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

const data = prngBytes("cli", 1_500_000);
const file = join(h.home, "input.bin");
writeFileSync(file, data);
let id = "";

test("cas put prints id, sha256, cid, size, chunks and new bytes; a second put stores nothing new", async () => {
  const r = json(await run("cas", "put", file, "--json"));
  assert.equal(r.sha256, sha(data));
  assert.equal(r.size, data.length);
  assert.match(r.cid, /^bafkrei[a-z2-7]+$/);
  assert.ok(r.chunks >= 2 && r.newChunks === r.chunks && r.newBytes === data.length && r.pinned === true);
  id = r.id;
  const again = json(await run("cas", "put", file, "--json"));
  assert.deepEqual([again.id, again.newChunks, again.newBytes], [id, 0, 0]);
  const human = await run("cas", "put", file);
  assert.equal(human.code, 0);
  assert.match(human.stdout, new RegExp(`id +${id}`));
  assert.ok(readdirSync(join(h.home, "data", "cas", "packs")).length >= 1, "packs under <home>/data/cas");
});

test("cas get to a file, a range, inline text; by id prefix, sha256 and CID", async () => {
  const out = join(h.home, "out.bin");
  const g = await run("cas", "get", id, "--out", out, "--json");
  assert.equal(g.code, 0, g.stderr);
  assert.ok(readFileSync(out).equals(data));
  const r = json(await run("cas", "get", id.slice(0, 10), "--range", "100000-100009", "--json"));
  assert.deepEqual([r.start, r.end, r.bytes, r.encoding], [100000, 100010, 10, "base64"]);
  assert.ok(Buffer.from(r.content, "base64").equals(data.subarray(100000, 100010)));
  const st = json(await run("cas", "stat", id, "--json"));
  const bySha = json(await run("cas", "stat", st.sha256, "--json"));
  const byCid = json(await run("cas", "stat", st.cid, "--json"));
  assert.deepEqual([bySha.id, byCid.id], [id, id]);
  const textFile = join(h.home, "hello.txt");
  writeFileSync(textFile, "hello world\n");
  const t = json(await run("cas", "put", textFile, "--json"));
  assert.equal(t.cid, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4");
  const inline = await run("cas", "get", t.id);
  assert.equal(inline.stdout, "hello world\n");
  const big = await run("cas", "get", id);
  assert.equal(big.code, 2, "more than 1 MiB inline is a usage error");
  assert.match(big.stderr, /--out/);
});

test("cas stat, ls, pin, unpin, gc", async () => {
  const st = json(await run("cas", "stat", id, "--json"));
  assert.deepEqual([st.pinned, st.holds], [true, ["pin"]]);
  assert.equal(json(await run("cas", "ls", "--json")).objects.length, 2);
  const extra = join(h.home, "extra.bin");
  writeFileSync(extra, prngBytes("extra", 300_000));
  const e = json(await run("cas", "put", extra, "--no-pin", "--json"));
  assert.equal(e.pinned, false);
  const gc = json(await run("cas", "gc", "--json"));
  assert.equal(gc.objectsDeleted, 1);
  assert.ok(gc.chunksDeleted >= 1);
  assert.equal((await run("cas", "stat", e.id)).code, 1);
  json(await run("cas", "unpin", id, "--json"));
  assert.equal(json(await run("cas", "stat", id, "--json")).pinned, false);
  assert.equal(json(await run("cas", "pin", id, "--json")).pinned, true);
  assert.equal(json(await run("cas", "gc", "--json")).objectsDeleted, 0);
});

test("cas verify: ok, then a flipped bit on disk fails get and is reported by verify (exit 1)", async () => {
  const ok = await run("cas", "verify");
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /^ok: /m);
  const st = json(await run("cas", "stat", id, "--json"));
  assert.ok(st.chunks >= 2);
  // The first chunk of the object: find it via its manifest on disk.
  const manifest = JSON.parse(readFileSync(join(h.home, "data", "cas", "objects", id.slice(0, 2), id), "utf8"));
  const victim: string = manifest.chunks[0][0];
  // Where its bytes are: a pack file and an offset (the store's own index says).
  const loc = await openStoreAt(join(h.home, "data", "cas")).locate(victim);
  assert.ok(loc);
  const fd = openSync(loc.path, "r+");
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, loc.off + 7);
  b[0] ^= 1;
  writeSync(fd, b, 0, 1, loc.off + 7);
  closeSync(fd);
  const g = await run("cas", "get", id, "--out", join(h.home, "bad.bin"));
  assert.equal(g.code, 1);
  assert.match(g.stderr, /AMI_CORRUPT/);
  assert.match(g.stderr, new RegExp(victim));
  assert.ok(!readdirSync(h.home).includes("bad.bin"), "a failed get leaves no partial output file");
  const v = await run("cas", "verify", "--json");
  assert.equal(v.code, 1);
  const rep = json(v);
  assert.equal(rep.ok, false);
  assert.deepEqual(rep.corrupt, [{ chunk: victim, objects: [id], problem: "mismatch" }]);
  const one = await run("cas", "verify", id);
  assert.equal(one.code, 1);
  assert.match(one.stdout, new RegExp(`CORRUPT chunk ${victim}`));
});

test("MCP lists the cas tools and cas_stat answers with structured content", async () => {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [binEntry, "mcp"],
    env: h.env as Record<string, string>,
    stderr: "pipe",
  });
  const client = new Client({ name: "test", version: "1" });
  await client.connect(transport);
  try {
    const names = (await client.listTools()).tools.map((t) => t.name);
    for (const n of ["cas_put", "cas_get", "cas_stat", "cas_ls", "cas_pin", "cas_unpin", "cas_gc", "cas_verify"])
      assert.ok(names.includes(n), `${n} missing`);
    const st = await client.callTool({ name: "cas_stat", arguments: { id } });
    assert.ok(!st.isError, JSON.stringify(st.content));
    assert.equal((st.structuredContent as { id: string }).id, id);
  } finally {
    await client.close();
  }
});
