/** Validate input against an op's schema and run it: the one call path behind CLI, MCP and control API. */
import type { z } from "zod";
import { AmiError } from "../core/errors.ts";
import type { OpContext, OpDef } from "../core/ops.ts";

export interface InputIssue {
  key: string;
  message: string;
}

export function inputIssues(error: z.ZodError): InputIssue[] {
  return error.issues.map((i) => {
    const key = i.code === "unrecognized_keys" ? [...i.path, ...i.keys].join(".") : i.path.join(".") || "(input)";
    if (i.code === "unrecognized_keys") return { key, message: "unknown field" };
    // zod says "expected string, received undefined" for a missing field: say "required" instead.
    if (i.code === "invalid_type" && / received undefined$/.test(i.message)) return { key, message: "required" };
    return { key, message: i.message };
  });
}

export function parseInput(op: OpDef, raw: unknown): unknown {
  const r = op.input.safeParse(raw ?? {});
  if (r.success) return r.data;
  const issues = inputIssues(r.error);
  throw new AmiError(
    "AMI_INVALID_INPUT",
    `${op.name}: invalid input: ${issues.map((i) => `${i.key}: ${i.message}`).join("; ")}`,
    { issues },
  );
}

export async function invokeOp(op: OpDef, raw: unknown, ctx: OpContext): Promise<unknown> {
  return op.run(parseInput(op, raw), ctx);
}
