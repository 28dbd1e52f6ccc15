import assert from "node:assert/strict";
import { test } from "node:test";
import { validateConfig } from "../config.ts";

test("media config errors name the key", () => {
  const { issues } = validateConfig({ media: { rtmpPort: 70000, hlsSegmentSeconds: 1, hlsPartSeconds: 2, bogus: 1 } });
  const keys = issues.map((i) => i.key).sort();
  assert.deepEqual(keys, ["media.bogus", "media.hlsPartSeconds", "media.rtmpPort"]);
  assert.match(issues.find((i) => i.key === "media.rtmpPort")?.message ?? "", /^'media\.rtmpPort' /);
});
