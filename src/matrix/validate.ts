/** Body/query validation for handlers: zod errors become Matrix M_BAD_JSON / M_MISSING_PARAM naming the key. */
import type { z } from "zod";
import { AmiError } from "../core/errors.ts";

export function parseBody<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  // reportInput: zod 4 only records the offending input (to tell missing from wrong-typed) when asked.
  const r = schema.safeParse(value, { reportInput: true });
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const key = issue.path.join(".") || "body";
  const missing = issue.code === "invalid_type" && (issue as { input?: unknown }).input === undefined;
  throw new AmiError(missing ? "M_MISSING_PARAM" : "M_BAD_JSON", `'${key}': ${missing ? "missing" : issue.message}`);
}

/** Integer query parameter with bounds; absent -> default; malformed -> M_INVALID_PARAM. */
export function queryInt(
  q: URLSearchParams,
  name: string,
  def: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const v = q.get(name);
  if (v === null || v === "") return def;
  if (!/^-?\d+$/.test(v)) throw new AmiError("M_INVALID_PARAM", `'${name}' must be an integer`);
  const n = Number(v);
  if (n < min || n > max) throw new AmiError("M_INVALID_PARAM", `'${name}' must be between ${min} and ${max}`);
  return n;
}

/** JSON-valued query parameter (e.g. `filter`); malformed -> M_INVALID_PARAM / M_NOT_JSON. */
export function queryJson(q: URLSearchParams, name: string): unknown {
  const v = q.get(name);
  if (v === null) return undefined;
  try {
    return JSON.parse(v);
  } catch {
    throw new AmiError("M_NOT_JSON", `'${name}' is not valid JSON`);
  }
}
