import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { isAmiError } from "../core/errors.ts";
import { defineOp } from "../core/ops.ts";
import { parseOpArgs, validateOpArgs } from "./parse.ts";

const op = defineOp({
  name: "demo.thing",
  summary: "demo",
  input: z
    .object({
      room: z.string(),
      count: z.number().int().default(1),
      dryRun: z.boolean().default(false),
      tag: z.array(z.string()).default([]),
      mode: z.enum(["a", "b"]).optional(),
    })
    .strict(),
  output: z.object({}),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["room"],
  short: { n: "count" },
  run: async () => ({}),
});

const parse = (argv: string[]) => validateOpArgs(op, parseOpArgs(op, argv));
const usageError = (fn: () => unknown, re: RegExp) =>
  assert.throws(fn, (e) => isAmiError(e) && e.code === "AMI_INVALID_INPUT" && re.test(e.message));

test("flags, positionals, short flags, negation and repeatable arrays", () => {
  assert.deepEqual(parse(["!r:x", "--count", "3", "--dry-run", "--tag", "a", "--tag=b", "--mode", "b"]), {
    room: "!r:x",
    count: 3,
    dryRun: true,
    tag: ["a", "b"],
    mode: "b",
  });
  assert.deepEqual(parse(["--room", "x", "-n", "7", "--no-dry-run"]), { room: "x", count: 7, dryRun: false, tag: [] });
  assert.deepEqual(parse(["--", "-weird-room"]), { room: "-weird-room", count: 1, dryRun: false, tag: [] });
});

test("usage errors name the flag", () => {
  usageError(() => parse(["x", "--count", "many"]), /--count: expected a number/);
  usageError(() => parse(["x", "--bogus"]), /unknown option '--bogus'/);
  usageError(() => parse(["x", "-z"]), /unknown option '-z'/);
  usageError(() => parse(["x", "--count"]), /--count: missing value/);
  usageError(() => parse(["x", "y"]), /unexpected argument 'y'/);
  usageError(() => parse([]), /<room>: /);
  usageError(() => parse(["x", "--mode", "c"]), /--mode: /);
  usageError(() => parse(["x", "--count", "1.5"]), /--count: /);
});
