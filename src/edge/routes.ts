/** Names, route patterns, vars and cron checks for deploys, and the route match the edge service uses. */
import { AmiError } from "../core/errors.ts";
import { parseCron } from "./cron.ts";
import { FUNCTION_NAME } from "./registry.ts";

export function checkName(name: string): void {
  if (!FUNCTION_NAME.test(name))
    throw new AmiError(
      "AMI_INVALID_INPUT",
      `function name '${name}' must be lowercase letters, digits and '-', starting with a letter (at most 63)`,
    );
}

/** Route patterns: `[host]/path`, a trailing `*` matches any rest (`/api/*`, `example.com/img/*`). */
export function checkRoute(route: string): void {
  if (!/^([A-Za-z0-9.-]+(:\d+)?)?\/[^\s*]*\*?$/.test(route))
    throw new AmiError("AMI_INVALID_INPUT", `route '${route}' must look like /path, /path/* or host/path/*`);
}

export function routeMatches(route: string, host: string, path: string): boolean {
  const slash = route.indexOf("/");
  const rhost = route.slice(0, slash);
  const rpath = route.slice(slash);
  if (rhost && rhost.toLowerCase() !== host.toLowerCase() && rhost.toLowerCase() !== host.split(":")[0].toLowerCase())
    return false;
  const p = path.split("?")[0];
  return rpath.endsWith("*") ? p.startsWith(rpath.slice(0, -1)) : p === rpath;
}

/** Binding names a function's env can take (KV and ORIGIN are ours). */
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const RESERVED = new Set(["KV", "ORIGIN"]);

/** `NAME=value` pairs (repeatable CLI flags) into a map; an empty value is kept (a secret's removal). */
export function parsePairs(what: "var" | "secret", pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf("=");
    const name = i < 0 ? p : p.slice(0, i);
    if (i < 0 || !VAR_NAME.test(name) || RESERVED.has(name))
      throw new AmiError(
        "AMI_INVALID_INPUT",
        `${what} '${name}' must be NAME=value with NAME of letters, digits and '_' (not KV or ORIGIN)`,
      );
    if (p.length - i - 1 > 5120) throw new AmiError("AMI_INVALID_INPUT", `${what} '${name}' is over 5 KB`);
    out[name] = p.slice(i + 1);
  }
  return out;
}

export function checkCrons(crons: readonly string[]): void {
  if (crons.length > 3) throw new AmiError("AMI_INVALID_INPUT", "at most 3 cron triggers per function");
  for (const c of crons) parseCron(c);
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
