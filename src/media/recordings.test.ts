import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { prune } from "./recordings.ts";

test("retention deletes the oldest files past max bytes or max age, never the newest", () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-rec-"));
  try {
    const now = Date.now();
    const names = ["1000-00000.mp4", "1000-00001.mp4", "1000-00002.mp4", "2000-00000.mp4"];
    names.forEach((n, i) => {
      writeFileSync(join(dir, n), Buffer.alloc(100));
      const t = (now - (names.length - i) * 3600_000) / 1000;
      utimesSync(join(dir, n), t, t);
    });
    writeFileSync(join(dir, "notes.txt"), "not a recording");
    assert.deepEqual(prune(dir, 0, 250, now), ["1000-00000.mp4", "1000-00001.mp4"]);
    assert.deepEqual(readdirSync(dir).sort(), ["1000-00002.mp4", "2000-00000.mp4", "notes.txt"]);
    // Older than 1.5 h: only 1000-00002 (2 h old) goes; the newest stays even when old.
    assert.deepEqual(prune(dir, 5400, 0, now), ["1000-00002.mp4"]);
    assert.deepEqual(prune(dir, 1, 1, now), []);
    assert.deepEqual(readdirSync(dir).sort(), ["2000-00000.mp4", "notes.txt"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
