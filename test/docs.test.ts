import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { renderReadme } from "../scripts/docs.ts";
import { renderExampleConfig } from "../src/control/example-config.ts";
import { exampleConfigPath } from "../src/control/ops/config.ts";

test("README's CLI and config reference match the code (regenerate with `node scripts/docs.ts`)", async () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  assert.equal(await renderReadme(readme), readme);
});

test("config/ami-streams.example.yaml is assembled from the features' parts (regenerate with `node scripts/docs.ts`)", () => {
  assert.equal(readFileSync(exampleConfigPath, "utf8"), renderExampleConfig());
});
