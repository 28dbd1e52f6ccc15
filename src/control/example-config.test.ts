import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { defaultConfig, parseConfigText, validateConfig } from "../config.ts";
import { exampleConfigPath } from "./ops/config.ts";

test("config/ami-streams.example.yaml parses to exactly defaultConfig()", () => {
  const raw = parseConfigText(readFileSync(exampleConfigPath, "utf8"), exampleConfigPath);
  // The raw YAML itself, not only the parsed result: a key left out of the example would be filled by defaults.
  assert.deepEqual(raw, defaultConfig());
  const { config, issues } = validateConfig(raw);
  assert.deepEqual(issues, []);
  assert.deepEqual(config, defaultConfig());
});
