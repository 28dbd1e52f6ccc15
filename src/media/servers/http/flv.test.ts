/**
 * HTTP-FLV's prebuilt chunks (flv.ts `chunkOf`): the bytes a viewer's socket gets for a frame are exactly what
 * node:http puts on the wire for `res.write(flvTag(...))` on a chunked response, and `tagOf` is the FLV tag.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { connect } from "node:net";
import { test } from "node:test";
import type { Frame } from "../../frame.ts";
import { flvTag, tagType } from "../../protocols/flv/tag.ts";
import { batchOf, chunkOf, tagOf } from "./flv.ts";

const frames: [Frame, number][] = [
  [{ kind: "video", dts: 5, data: Buffer.from([0x17, 1, 0, 0, 0, 1, 2, 3]), keyframe: true, config: false }, 0],
  [{ kind: "audio", dts: 7, data: Buffer.alloc(300, 0xaf), keyframe: false, config: false }, 0x1234567],
  [{ kind: "video", dts: 9, data: Buffer.alloc(70_000, 0x27), keyframe: false, config: false }, 40.7],
];

test("tagOf is flvTag; the chunk around it is the chunk-size line, the tag and CRLF", () => {
  for (const [f, ts] of frames) {
    const tag = flvTag(tagType(f), ts, f.data);
    assert.deepEqual(tagOf(f, ts), tag);
    const framed = Buffer.concat([Buffer.from(`${tag.length.toString(16)}\r\n`), tag, Buffer.from("\r\n")]);
    assert.deepEqual(chunkOf(f, ts), framed);
    // Cached per frame and output time; another time makes another tag.
    assert.equal(chunkOf(f, ts), chunkOf(f, ts));
    assert.notDeepEqual(chunkOf(f, ts + 1000), framed);
  }
});

test("the chunks are the bytes node:http writes for res.write of the same tags", async () => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "video/x-flv" });
    for (const [f, ts] of frames) res.write(flvTag(tagType(f), ts, f.data));
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    const s = connect(port, "127.0.0.1", () => s.end("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"));
    s.on("data", (d) => parts.push(d));
    s.on("end", () => resolve(Buffer.concat(parts)));
    s.on("error", reject);
  });
  server.close();
  const body = raw.subarray(raw.indexOf("\r\n\r\n") + 4);
  const ours = Buffer.concat([...frames.map(([f, ts]) => chunkOf(f, ts)), Buffer.from("0\r\n\r\n")]);
  assert.deepEqual(body, ours);
});

test("batchOf: the chunks' bytes in order, one Buffer shared while the same chunks come again", () => {
  const chunks = frames.map(([f, ts]) => chunkOf(f, ts));
  const batch = batchOf(chunks);
  assert.deepEqual(batch, Buffer.concat(chunks));
  assert.equal(batchOf([...chunks]), batch);
  // Same first chunk, other chunks after it (another viewer's window): its own bytes, not the cached batch.
  const other = [chunks[0] as Buffer, chunks[2] as Buffer];
  assert.deepEqual(batchOf(other), Buffer.concat(other));
  assert.equal(batchOf([chunks[1] as Buffer]), chunks[1]);
});
