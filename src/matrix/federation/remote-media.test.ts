/** The streaming multipart reader of the remote media cache: any chunking, boundaries split across chunks, limits. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { fileBytes, parseMultipart, Reader, readHead } from "./remote-media.ts";

const B = "b0undaryXYZ";
const answer = (file: Buffer, headers = "Content-Type: image/png\r\nContent-Disposition: inline") =>
  Buffer.concat([
    Buffer.from(`--${B}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${B}\r\n${headers}\r\n\r\n`),
    file,
    Buffer.from(`\r\n--${B}--\r\n`),
  ]);

async function* chunked(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function read(buf: Buffer, size: number, limit = 1 << 20) {
  const r = new Reader(chunked(buf, size));
  const headers = await readHead(r, B, 64 * 1024);
  const parts: Buffer[] = [];
  for await (const c of fileBytes(r, B, limit, () => new Error("too large"))) parts.push(c);
  return { headers, file: Buffer.concat(parts) };
}

test("the file part comes out whole whatever the chunking, even bytes that look like a boundary", async () => {
  // "\r\n--b0undary" minus its last byte inside the file: must not end it.
  const file = Buffer.concat([randomBytes(5000), Buffer.from(`\r\n--${B.slice(0, -1)}`), randomBytes(3000)]);
  for (const size of [1, 2, 7, 64, 4096, 1 << 20]) {
    const { headers, file: got } = await read(answer(file), size);
    assert.deepEqual(headers, { "content-type": "image/png", "content-disposition": "inline" }, `chunks of ${size}`);
    assert.ok(got.equals(file), `chunks of ${size}`);
  }
  const [meta, part] = parseMultipart(answer(file), B);
  assert.equal(meta.body.toString(), "{}");
  assert.ok(part.body.equals(file));
  // An empty file, a file part without headers.
  assert.equal((await read(answer(Buffer.alloc(0)), 3)).file.length, 0);
  const bare = await read(Buffer.concat([Buffer.from(`--${B}\r\n\r\n{}\r\n--${B}\r\n\r\nabc\r\n--${B}--\r\n`)]), 1);
  assert.deepEqual([bare.headers, bare.file.toString()], [{}, "abc"]);
});

test("too large, truncated, or not multipart: errors, never a partial file", async () => {
  const file = randomBytes(10_000);
  await assert.rejects(read(answer(file), 1000, 9_999), /too large/);
  assert.equal((await read(answer(file), 1000, 10_000)).file.length, 10_000);
  const whole = answer(file);
  await assert.rejects(read(whole.subarray(0, whole.length - 20), 100), /closing boundary/);
  await assert.rejects(read(Buffer.from(`--${B}\r\n\r\nnot json\r\n--${B}\r\n\r\nx\r\n--${B}--`), 5), /not JSON/);
  await assert.rejects(read(Buffer.from("just some bytes"), 5), /truncated/);
  // A head that never ends within the cap.
  const r = new Reader(chunked(Buffer.alloc(200_000, 0x61), 4096));
  await assert.rejects(readHead(r, B, 64 * 1024), /no file part/);
});
