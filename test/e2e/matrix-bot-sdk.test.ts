/**
 * matrix-bot-sdk 0.8 (a second client library, as bots use it) against the homeserver on both backends: relations
 * through its getRelationsForEvent (all, by rel_type, by rel_type and event type), an edit and a thread bundled into
 * the original event it reads back (unsigned m.relations), and the same reaction twice refused with the spec's
 * M_DUPLICATE_ANNOTATION as the SDK reports errors.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MatrixClient, MemoryStorageProvider } from "./helpers/bot-sdk.ts";
import { registerUser } from "./helpers/client.ts";
import { BACKENDS, createTestDatabase, startInProcess } from "./helpers/homeserver.ts";

for (const backend of BACKENDS) {
  describe(`matrix-bot-sdk: relations (${backend})`, () => {
    let hs: Awaited<ReturnType<typeof startInProcess>>;
    let drop = async () => {};
    let alice: InstanceType<typeof MatrixClient>;
    let bot: InstanceType<typeof MatrixClient>;
    let roomId: string;
    let root: string;

    before(async () => {
      const db = backend === "postgres" ? await createTestDatabase("postgres", "") : undefined;
      if (db) drop = db.drop;
      hs = await startInProcess(db ? { database: db.database } : {});
      const [a, b] = await Promise.all([
        registerUser(hs.url, `alice${backend}`),
        registerUser(hs.url, `bot${backend}`),
      ]);
      alice = new MatrixClient(hs.url, a.accessToken, new MemoryStorageProvider());
      bot = new MatrixClient(hs.url, b.accessToken, new MemoryStorageProvider());
      roomId = await alice.createRoom({ preset: "public_chat" });
      await bot.joinRoom(roomId);
      root = await alice.sendMessage(roomId, { msgtype: "m.text", body: "what should we build?" });
    });
    after(async () => {
      await hs?.dispose();
      await drop();
    });

    it("lists a message's relations, filtered by rel_type and event type", async () => {
      const reaction = await bot.sendEvent(roomId, "m.reaction", {
        "m.relates_to": { rel_type: "m.annotation", event_id: root, key: "👍" },
      });
      const edit = await alice.sendMessage(roomId, {
        msgtype: "m.text",
        body: "* what should we build first?",
        "m.new_content": { msgtype: "m.text", body: "what should we build first?" },
        "m.relates_to": { rel_type: "m.replace", event_id: root },
      });
      const reply = await bot.sendMessage(roomId, {
        msgtype: "m.text",
        body: "a homeserver",
        "m.relates_to": { rel_type: "m.thread", event_id: root },
      });
      const all = await bot.getRelationsForEvent(roomId, root);
      assert.deepEqual(new Set(all.chunk.map((e) => e.event_id)), new Set([reaction, edit, reply]));
      const annotations = await bot.getRelationsForEvent(roomId, root, "m.annotation");
      assert.deepEqual(
        annotations.chunk.map((e) => e.event_id),
        [reaction],
      );
      const threadMessages = await bot.getRelationsForEvent(roomId, root, "m.thread", "m.room.message");
      assert.deepEqual(
        threadMessages.chunk.map((e) => e.event_id),
        [reply],
      );
      assert.deepEqual((await bot.getRelationsForEvent(roomId, root, "m.thread", "m.reaction")).chunk, []);

      // The original as the SDK reads it carries the edit and the thread summary (bundled aggregations).
      const original = await bot.getEvent(roomId, root);
      const rel = original.unsigned?.["m.relations"];
      assert.equal(rel?.["m.replace"]?.event_id, edit);
      assert.equal(rel?.["m.thread"]?.count, 1);
      assert.equal(rel?.["m.thread"]?.latest_event?.event_id, reply);
    });

    it("refuses the same reaction twice with M_DUPLICATE_ANNOTATION", async () => {
      const content = { "m.relates_to": { rel_type: "m.annotation", event_id: root, key: "🎉" } };
      await bot.sendEvent(roomId, "m.reaction", content);
      await assert.rejects(bot.sendEvent(roomId, "m.reaction", content), (e: any) => {
        assert.equal(e.statusCode, 400);
        assert.equal(e.errcode, "M_DUPLICATE_ANNOTATION");
        return true;
      });
    });
  });
}
