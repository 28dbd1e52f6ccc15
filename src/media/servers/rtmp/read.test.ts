/** readSocket: reads of a plain server socket land in the shared buffer, bytes intact with connections interleaved. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { test } from "node:test";
import { readSocket } from "./read.ts";

test("two connections sending at once through the one reused read buffer each get their bytes intact", async () => {
  const got: { reused: boolean; hash: string; n: number }[] = [];
  const done = Promise.withResolvers<void>();
  const server = createServer((sock: Socket) => {
    const h = createHash("sha256");
    let n = 0;
    // Hash each read during the callback only: after it the buffer belongs to the next read.
    const reused = readSocket(sock, (b) => {
      h.update(b);
      n += b.length;
    });
    sock.on("close", () => {
      got.push({ reused, hash: h.digest("hex"), n });
      if (got.length === 2) done.resolve();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const payloads = [1, 2].map((seed) => {
    const b = Buffer.alloc(3_000_000);
    for (let i = 0; i < b.length; i++) b[i] = (i * 31 + seed * 7 + (i >> 12)) & 0xff;
    return b;
  });
  for (const p of payloads) {
    const c = connect(port, "127.0.0.1", () => {
      for (let i = 0; i < p.length; i += 50_000) c.write(p.subarray(i, i + 50_000));
      c.end();
    });
  }
  await done.promise;
  server.close();
  const want = payloads.map((p) => createHash("sha256").update(p).digest("hex")).sort();
  assert.deepEqual(got.map((g) => g.hash).sort(), want);
  assert.ok(
    got.every((g) => g.reused && g.n === 3_000_000),
    "plain sockets use the reused buffer on this Node",
  );
});
