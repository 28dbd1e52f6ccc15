import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { test } from "node:test";
import { createLogger } from "./logger.ts";

test("every line is scrubbed after serialisation: fields, nested values and the message", () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l) }).child({ op: "restream" });
  log.info("pushing to rtmp://u:pw@h/live/sk1", {
    to: "srt://h:9000?streamid=publish:x&passphrase=abcdefghij",
    req: { url: "/_matrix/client/v3/sync?access_token=syt_abc", headers: { authorization: "Bearer syt_abc" } },
  });
  const out = lines[0] as string;
  for (const secret of ["pw", "sk1", "publish:x", "abcdefghij", "syt_abc"]) assert.ok(!out.includes(secret), out);
  const j = JSON.parse(out);
  assert.equal(j.msg, "pushing to rtmp://***@h/live/***");
  assert.equal(j.op, "restream");
  assert.equal(j.req.headers.authorization, "***");
});

test("a log write failing with ENOSPC (stderr on /dev/full) does not end the process", () => {
  const script = `const { createLogger } = await import(${JSON.stringify(new URL("./logger.ts", import.meta.url).href)});
    const log = createLogger();
    for (let i = 0; i < 20; i++) log.error("line", { i });
    setTimeout(() => console.log("alive"), 50);`;
  const fd = openSync("/dev/full", "w");
  try {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", fd],
      encoding: "utf8",
    });
    assert.equal(r.status, 0);
    assert.equal(r.stdout.trim(), "alive");
  } finally {
    closeSync(fd);
  }
});
