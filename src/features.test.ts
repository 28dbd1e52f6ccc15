import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultConfig } from "./config.ts";
import { features, reservedNames } from "./features.ts";

test("each feature's ops are named under its name or a command word it declares (so program names can't clash)", async () => {
  const seen = new Set<string>();
  for (const f of features) {
    for (const op of await f.ops()) {
      const first = op.name.split(".")[0];
      assert.ok(first === f.name || f.commands.includes(first), `${f.name}: op ${op.name} is outside its words`);
      assert.ok(!seen.has(op.name), `op ${op.name} defined twice`);
      seen.add(op.name);
    }
  }
  for (const w of ["up", "status", "stream", "matrix", "cas", "cdn"]) assert.ok(reservedNames().has(w), w);
});

test("every feature with a config section has it in the defaults; planned features' ops fail as not built", async () => {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  for (const f of features) {
    if (f.config) assert.deepEqual(config[f.name], f.config.parse({}), f.name);
    if (f.status === "planned") {
      for (const op of await f.ops())
        await assert.rejects(op.run({}, {} as never), (e: { code?: string }) => e.code === "AMI_NOT_BUILT");
    }
  }
});
