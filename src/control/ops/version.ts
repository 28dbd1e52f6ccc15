/** `ami-streams version`. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import { repoRoot } from "../bin-path.ts";

export const versionOp = defineOp({
  name: "version",
  summary: "Print the ami-streams and Node.js versions",
  input: z.object({}).strict(),
  output: z.object({ version: z.string(), node: z.string() }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) => `ami-streams ${o.version} (node ${o.node})`,
  async run() {
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string };
    return { version: pkg.version, node: process.version };
  },
});
