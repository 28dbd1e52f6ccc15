/** `ami-streams test [--smoke] [--unit] [--e2e] [filter...]`: the test suite, or smoke checks of running services. */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp } from "../../core/ops.ts";
import { repoRoot } from "../bin-path.ts";
import { smoke } from "../smoke.ts";

export const testOp = defineOp({
  name: "test",
  summary: "Run the project's test suite, or with --smoke check the running services end to end",
  input: z
    .object({
      smoke: z.boolean().default(false).describe("check the running services instead of running the suite"),
      unit: z.boolean().default(false).describe("unit tests only (src/**/*.test.ts)"),
      e2e: z.boolean().default(false).describe("end-to-end tests only (test/**/*.test.ts)"),
      filter: z.array(z.string()).default([]).describe("only test files whose path contains one of these"),
    })
    .strict(),
  output: z.object({
    passed: z.boolean(),
    checks: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string() })),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["filter"],
  cliOnly: true,
  human: (o) => (o.passed ? "all passed" : "FAILED"),
  exitCode: (o) => (o.passed ? 0 : 1),
  async run({ smoke: isSmoke, unit, e2e, filter }, ctx) {
    if (isSmoke) {
      const checks = await smoke(ctx);
      return { passed: checks.length > 0 && checks.every((c) => c.ok), checks };
    }
    const args = [
      join(repoRoot, "scripts", "run-tests.ts"),
      ...(unit ? ["--unit"] : []),
      ...(e2e ? ["--e2e"] : []),
      ...filter,
    ];
    // The suite's own output is the report; ctx.print sends it to stdout (stderr under --json).
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
      createInterface({ input: child.stdout }).on("line", (l) => ctx.print(l));
      child.on("error", reject);
      child.on("exit", (c) => resolve(c ?? 1));
    }).catch((e: Error) => {
      throw new AmiError("AMI_INTERNAL", `could not run the test suite: ${e.message}`);
    });
    return { passed: code === 0, checks: [{ name: "test suite", ok: code === 0, detail: `exit code ${code}` }] };
  },
});
