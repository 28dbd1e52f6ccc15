/**
 * RoomRouter.forward to a writer whose registry row has no URL yet (its slot is registered before its router fills
 * in its address): the send is persisted locally (null), never failed with "Invalid URL".
 */
import assert from "node:assert/strict";
import { createConnection } from "node:net";
import { test } from "node:test";
import { createLogger } from "../../core/logger.ts";
import type { SendEventInput } from "../hs.ts";
import { RoomRouter } from "./routing.ts";

test("a forward to a writer without an address yet is persisted here", async () => {
  // Nothing listens on port 1: the re-read of the writers that the forward asks for fails quietly.
  const router = new RoomRouter("postgres://postgres@127.0.0.1:1/none", () => 0, createLogger({ level: "error" }));
  try {
    const input = { roomId: "!r:x", sender: "@a:x", type: "m.room.message", content: {} } as unknown as SendEventInput;
    assert.equal(await router.forward({ slot: 1, url: "", secret: "" }, input), null);
  } finally {
    await router.close();
  }
});

/** Connects to the router's forward listener; resolves with what it answered once the router closes the connection. */
function hostile(url: string, bytes: Buffer, opts: { halfFrame?: boolean } = {}): Promise<Buffer> {
  const [host, port] = url.slice("ami-fwd://".length).split(":");
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const s = createConnection({ host, port: Number(port) }, () => s.write(bytes));
    s.on("data", (d) => got.push(d));
    s.on("error", () => {});
    s.on("close", () => resolve(Buffer.concat(got)));
    if (!opts.halfFrame) setTimeout(() => reject(new Error("the router kept a hostile connection open")), 5_000);
  });
}

function frame(msg: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(msg));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

test("the forward listener: garbage, an oversized or malformed frame and a wrong secret close the connection; it keeps serving", async () => {
  const router = new RoomRouter("postgres://postgres@127.0.0.1:1/none", () => 0, createLogger({ level: "error" }));
  let handled = 0;
  router.serve(async () => {
    handled++;
    return { eventId: "$e", stream: 1 };
  });
  // The listener is up before the registry (unreachable here) is read.
  await router.start().catch(() => {});
  try {
    assert.match(router.url, /^ami-fwd:\/\/127\.0\.0\.1:\d+$/);
    // An HTTP request line: its first four bytes read as a length far past the frame cap.
    assert.equal((await hostile(router.url, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))).length, 0);
    const bad = Buffer.from("{not json");
    const head = Buffer.alloc(4);
    head.writeUInt32BE(bad.length);
    assert.equal((await hostile(router.url, Buffer.concat([head, bad]))).length, 0);
    assert.equal((await hostile(router.url, frame([1, 2, 3]))).length, 0);
    // A wrong secret is answered (503: the forwarder persists the send itself), then the connection ends.
    const answer = await hostile(router.url, frame({ i: 1, s: "guess", input: { roomId: "!r:x" } }));
    const a = JSON.parse(answer.subarray(4).toString());
    assert.equal(a.i, 1);
    assert.equal(a.st, 503);
    assert.equal(handled, 0);
    // A forwarder without the secret (a stale registry row) gets null: persist here, never a hang.
    const other = new RoomRouter("postgres://postgres@127.0.0.1:1/none", () => 1, createLogger({ level: "error" }));
    try {
      const input = {
        roomId: "!r:x",
        sender: "@a:x",
        type: "m.room.message",
        content: {},
      } as unknown as SendEventInput;
      assert.equal(await other.forward({ slot: 0, url: router.url, secret: "stale" }, input), null);
    } finally {
      await other.close();
    }
    assert.equal(handled, 0);
  } finally {
    await router.close();
  }
});

test("the forward listener closes a connection that leaves a frame unfinished (slow or half-open peer)", {
  timeout: 30_000,
}, async () => {
  const router = new RoomRouter("postgres://postgres@127.0.0.1:1/none", () => 0, createLogger({ level: "error" }));
  await router.start().catch(() => {});
  try {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(100);
    const closed = hostile(router.url, Buffer.concat([head, Buffer.from('{"i":')]), { halfFrame: true });
    const started = Date.now();
    assert.equal((await closed).length, 0);
    assert.ok(Date.now() - started >= 9_000, "closed at the partial-frame timeout (10 s), not at once");
  } finally {
    await router.close();
  }
});
