import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { renderReadme } from "../scripts/docs.ts";

test("README's CLI and config reference match the code (regenerate with `node scripts/docs.ts`)", async () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  assert.equal(await renderReadme(readme), readme);
});
