import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { defaultConfig, parseConfigText, validateConfig } from "../config.ts";
import { features } from "../features.ts";
import { exampleConfigPath } from "./ops/config.ts";

test("config/ami-streams.example.yaml parses to exactly defaultConfig()", () => {
  const raw = parseConfigText(readFileSync(exampleConfigPath, "utf8"), exampleConfigPath);
  // The raw YAML itself, not only the parsed result: a key left out of the example would be filled by defaults.
  assert.deepEqual(raw, defaultConfig());
  const { config, issues } = validateConfig(raw);
  assert.deepEqual(issues, []);
  assert.deepEqual(config, defaultConfig());
});

test("each feature's example part is its section with exactly the defaults", () => {
  for (const f of features) {
    if (!f.config) continue;
    assert.ok(f.configExample, `${f.name}: a feature with a config section has an example part`);
    const raw = parseConfigText(readFileSync(f.configExample, "utf8")) as Record<string, unknown>;
    assert.deepEqual(Object.keys(raw), [f.name]);
    assert.deepEqual(raw[f.name], f.config.parse({}), f.name);
  }
});
