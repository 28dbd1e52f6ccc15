/** Conformance: kill -9 during a write load loses no acknowledged write and leaves consistent state. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { openStore } from "../open.ts";
import { type MakeStore, storeTest } from "./helpers.ts";

const WRITER = join(import.meta.dirname, "crash-writer.ts");

export function crashTests(make: MakeStore): void {
  storeTest(make, "crash safety: kill -9 mid-load keeps every acknowledged event, consistently", async (s, h) => {
    if (!h.database) return; // the backend cannot be opened from another process
    await s.close();
    const dataDir = mkdtempSync(join(tmpdir(), "ami-crash-"));
    try {
      const child = spawn(process.execPath, [WRITER, h.database, dataDir], { stdio: ["ignore", "pipe", "inherit"] });
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.on("exit", (_code, signal) => resolve(signal)),
      );
      let acked = 0;
      for await (const line of createInterface({ input: child.stdout })) {
        acked = Number(line);
        if (acked >= 400) child.kill("SIGKILL");
      }
      assert.equal(await exited, "SIGKILL", "the writer was killed, not finished");
      assert.ok(acked >= 400);

      const r = await openStore(h.database, dataDir);
      try {
        const R = "!crash:hs";
        const events = await r.events.getRoomEvents({ roomId: R, dir: "f", from: 0, limit: 100_000 });
        // Every acknowledged event is there; anything after it was either fully committed or not at all.
        assert.ok(events.length >= acked, `${events.length} events persisted, ${acked} acknowledged`);
        assert.deepEqual(
          events.map((e) => e.stream),
          Array.from({ length: events.length }, (_, i) => i + 1),
        );
        for (const e of events) assert.equal(await r.events.getTxnEvent(e.sender, "D", "S", `t${e.stream}`), e.eventId);
        const last = events[events.length - 1].stream;
        assert.equal(await r.getMaxStream(), last);
        // Memberships and current state match the last member event per user.
        const lastMember = new Map<string, string>();
        for (const e of events) if (e.type === "m.room.member") lastMember.set(e.stateKey!, e.eventId);
        for (const [userId, eventId] of lastMember) {
          assert.equal((await r.events.getMembership(R, userId))?.eventId, eventId);
          assert.equal((await r.events.getCurrentStateEvent(R, "m.room.member", userId))?.eventId, eventId);
        }
        assert.equal((await r.events.getStateAt(R, last)).length, lastMember.size);
      } finally {
        await r.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
}
