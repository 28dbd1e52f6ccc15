import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, test } from "node:test";
import { LogSink } from "./log-sink.ts";

const dir = mkdtempSync(join(tmpdir(), "log-sink-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("lines are scrubbed, split on newlines across chunks, and the file is 0600", async () => {
  const file = join(dir, "a.log");
  const sink = new LogSink(file);
  const s = new PassThrough();
  sink.attach(s);
  s.write("GET /sync?access_token=syt_secret 200\nhalf a ");
  s.write("line\n");
  s.end("restream to rtmp://u:pw@h/live/key1");
  await new Promise((r) => setImmediate(r));
  sink.close();
  assert.equal(
    readFileSync(file, "utf8"),
    "GET /sync?access_token=*** 200\nhalf a line\nrestream to rtmp://***@h/live/***\n",
  );
  assert.equal(statSync(file).mode & 0o777, 0o600);
});

test("a full disk drops lines without throwing; the first append that works says how many", async () => {
  const link = join(dir, "full.log");
  symlinkSync("/dev/full", link); // every write: ENOSPC
  const errors: string[] = [];
  const sink = new LogSink(link, (m) => errors.push(m));
  sink.writeLines(["one", "two"]);
  sink.writeLines(["three"]);
  assert.equal(sink.dropped, 3);
  assert.equal(errors.length, 1, "one report per episode");
  assert.match(errors[0], /ENOSPC/);
  // Space comes back (the link now points at a real file); the sink reopens after its retry pause.
  rmSync(link);
  symlinkSync(join(dir, "real.log"), link);
  await new Promise((r) => setTimeout(r, 1100));
  sink.writeLines(["four"]);
  sink.close();
  const lines = readFileSync(join(dir, "real.log"), "utf8").trim().split("\n");
  assert.equal(lines.length, 2);
  assert.match(JSON.parse(lines[0]).msg, /dropped 3 line\(s\): ENOSPC/);
  assert.equal(lines[1], "four");
  assert.equal(sink.dropped, 0);
  assert.equal(sink.droppedTotal, 3);
});
