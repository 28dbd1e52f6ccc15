/**
 * Matrix canonical JSON (spec appendix "Canonical JSON"): shortest UTF-8 encoding, object keys
 * sorted by Unicode code point, integers only in [-(2^53)+1, 2^53-1], no floats, no `-0`.
 * Everything that is signed or hashed goes through here, so it refuses anything it cannot encode
 * exactly rather than guessing.
 */
import { AmiError } from "../../core/errors.ts";

export const MAX_SAFE_INT = 2 ** 53 - 1;
export const MIN_SAFE_INT = -(2 ** 53) + 1;

function bad(message: string): AmiError {
  return new AmiError("M_BAD_JSON", message);
}

/**
 * Orders strings by code point. JS `<` compares UTF-16 code units, which puts astral characters
 * (surrogate pairs) before U+E000..U+FFFF; remap so surrogates sort last, as their code points do.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x <= 0xdfff ? x + 0x2000 : x - 0x800;
      y = y <= 0xdfff ? y + 0x2000 : y - 0x800;
    }
    return x - y;
  }
  return a.length - b.length;
}

function encodeString(s: string, path: string): string {
  // A lone surrogate has no UTF-8 encoding; JSON.stringify would emit a \ud800 escape that the
  // canonical grammar does not allow.
  if (!s.isWellFormed()) throw bad(`${path}: string contains a lone surrogate`);
  // JSON.stringify already emits exactly the canonical escapes: \" \\ \b \f \n \r \t and lowercase
  // \u00XX for the other control characters; everything else (incl. U+2028, DEL) stays raw.
  return JSON.stringify(s);
}

function encodeNumber(n: number, path: string): string {
  if (!Number.isInteger(n)) throw bad(`${path}: ${n} is not an integer (floats are not allowed in canonical JSON)`);
  if (n > MAX_SAFE_INT || n < MIN_SAFE_INT) throw bad(`${path}: integer ${n} is out of range`);
  // String(-0) is "0", and String() only uses exponents from 1e21 on, far past 2^53.
  return String(n);
}

function encode(value: unknown, path: string, ancestors: Set<object>): string {
  switch (typeof value) {
    case "string":
      return encodeString(value, path);
    case "number":
      return encodeNumber(value, path);
    case "boolean":
      return value ? "true" : "false";
    case "object":
      break;
    default:
      throw bad(`${path}: ${typeof value} is not a JSON value`);
  }
  if (value === null) return "null";
  if (ancestors.has(value)) throw bad(`${path}: circular reference`);
  ancestors.add(value);
  try {
    if (Array.isArray(value)) {
      const parts: string[] = [];
      for (let i = 0; i < value.length; i++) {
        const item = value[i];
        if (item === undefined) throw bad(`${path}[${i}]: undefined is not a JSON value`);
        parts.push(encode(item, `${path}[${i}]`, ancestors));
      }
      return `[${parts.join(",")}]`;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw bad(`${path}: ${proto?.constructor?.name ?? "object"} is not a plain JSON object`);
    }
    const obj = value as Record<string, unknown>;
    // Keys whose value is undefined are skipped, as JSON.stringify does, so optional fields of
    // typed objects serialise the same as their JSON round trip.
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort(compareCodePoints);
    const parts: string[] = [];
    for (const k of keys) parts.push(`${encodeString(k, path)}:${encode(obj[k], `${path}.${k}`, ancestors)}`);
    return `{${parts.join(",")}}`;
  } finally {
    ancestors.delete(value);
  }
}

/** The canonical JSON text of `value`; throws AmiError("M_BAD_JSON") for anything it cannot encode. */
export function canonicalJson(value: unknown): string {
  return encode(value, "$", new Set());
}

/** The canonical JSON as the UTF-8 bytes that get signed and hashed. */
export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), "utf8");
}

/** True when `value` can be encoded as canonical JSON (e.g. to validate a client's event content). */
export function isCanonicalJsonValue(value: unknown): boolean {
  try {
    canonicalJson(value);
    return true;
  } catch {
    return false;
  }
}
