/**
 * RoomRouter.forward to a writer whose registry row has no URL yet (its slot is registered before its router fills
 * in its address): the send is persisted locally (null), never failed with "Invalid URL".
 */
import assert from "node:assert/strict";
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
