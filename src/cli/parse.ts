/**
 * argv -> op input. Fields are `--kebab-case` flags (booleans `--x/--no-x`, numbers parsed, arrays repeatable),
 * `positional` keys also take positionals, `short` maps one-letter flags. Errors name the flag.
 */

import { inputIssues } from "../control/invoke.ts";
import { AmiError } from "../core/errors.ts";
import type { OpDef } from "../core/ops.ts";
import { type Field, fieldsOf } from "./schema.ts";

const usage = (message: string) => new AmiError("AMI_INVALID_INPUT", message);

function convert(f: Field, kind: Field["kind"], raw: string): unknown {
  if (kind === "number") {
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n)) throw usage(`--${f.flag}: expected a number, got '${raw}'`);
    return n;
  }
  if (kind === "boolean") {
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0") return false;
    throw usage(`--${f.flag}: expected true or false, got '${raw}'`);
  }
  if (kind === "other") {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

export function parseOpArgs(op: OpDef, argv: string[]): Record<string, unknown> {
  const fields = fieldsOf(op.input);
  const byFlag = new Map(fields.map((f) => [f.flag, f]));
  const out: Record<string, unknown> = {};
  const positionals: string[] = [];
  const set = (f: Field, raw: string) => {
    if (f.kind === "array") {
      if (!Array.isArray(out[f.key])) out[f.key] = [];
      (out[f.key] as unknown[]).push(convert(f, f.item ?? "string", raw));
    } else {
      if (f.key in out) throw usage(`--${f.flag} given more than once`);
      out[f.key] = convert(f, f.kind, raw);
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      positionals.push(a);
      continue;
    }
    let name: string;
    let value: string | undefined;
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      value = eq >= 0 ? a.slice(eq + 1) : undefined;
    } else {
      const long = op.short?.[a.slice(1, 2)];
      if (!long || a.length > 2) throw usage(`unknown option '${a}' (see --help)`);
      name = fields.find((x) => x.key === long)?.flag ?? long;
    }
    const f = byFlag.get(name);
    if (!f && name.startsWith("no-") && value === undefined) {
      const neg = byFlag.get(name.slice(3));
      if (neg?.kind === "boolean") {
        out[neg.key] = false;
        continue;
      }
    }
    if (!f) throw usage(`unknown option '--${name}' (see --help)`);
    if (f.kind === "boolean" && value === undefined) {
      out[f.key] = true;
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw usage(`--${f.flag}: missing value`);
      value = argv[++i];
    }
    set(f, value);
  }
  const posKeys = op.positional ?? [];
  for (const key of posKeys) {
    const f = fields.find((x) => x.key === key);
    if (!f || positionals.length === 0) continue;
    if (key in out && f.kind !== "array") throw usage(`<${f.flag}> given both as positional and as --${f.flag}`);
    if (f.kind === "array") for (const p of positionals.splice(0)) set(f, p);
    else set(f, positionals.shift()!);
  }
  if (positionals.length) throw usage(`unexpected argument '${positionals[0]}' (see --help)`);
  return out;
}

/** Validate with the op's schema; issues are reported with flag names, as the user typed them. */
export function validateOpArgs(op: OpDef, raw: Record<string, unknown>): unknown {
  const r = op.input.safeParse(raw);
  if (r.success) return r.data;
  const flags = new Map(fieldsOf(op.input).map((f) => [f.key, f]));
  const issues = inputIssues(r.error).map((i) => {
    const f = flags.get(i.key.split(".")[0]);
    const pos = f && op.positional?.includes(f.key) ? `<${f.flag}>` : undefined;
    return { ...i, flag: pos ?? `--${f?.flag ?? i.key}` };
  });
  throw new AmiError("AMI_INVALID_INPUT", issues.map((i) => `${i.flag}: ${i.message}`).join("\n"), { issues });
}
