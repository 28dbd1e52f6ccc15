/**
 * Cache keys: lower-cased host + path + the query with ignored parameters dropped (patterns ending in `*` match a
 * prefix, e.g. `utm_*`), or only the kept ones when `keepQuery` is set, sorted so parameter order does not split
 * the cache. LL-HLS's `_HLS_msn` / `_HLS_part` / `_HLS_skip` always stay in the key (each is a different answer).
 */
export interface KeyRules {
  ignoreQuery: readonly string[];
  keepQuery: readonly string[] | null;
}

const ALWAYS_KEPT = new Set(["_HLS_msn", "_HLS_part", "_HLS_skip"]);

const matches = (name: string, patterns: readonly string[]): boolean =>
  patterns.some((p) => (p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : name === p));

/** `pathAndQuery` is the request target (origin form). Returns the normalised path + query. */
export function normalisePath(pathAndQuery: string, rules: KeyRules): string {
  const q = pathAndQuery.indexOf("?");
  if (q < 0) return pathAndQuery;
  const path = pathAndQuery.slice(0, q);
  const params = new URLSearchParams(pathAndQuery.slice(q + 1));
  const kept: [string, string][] = [];
  for (const [k, v] of params) {
    const keep = ALWAYS_KEPT.has(k) || (rules.keepQuery ? matches(k, rules.keepQuery) : !matches(k, rules.ignoreQuery));
    if (keep) kept.push([k, v]);
  }
  if (kept.length === 0) return path;
  kept.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return `${path}?${new URLSearchParams(kept).toString()}`;
}

/** The primary key: host (lower-case, default port dropped) + normalised path. */
export function primaryKey(host: string | undefined, pathAndQuery: string, rules: KeyRules): string {
  return keyOf(host, normalisePath(pathAndQuery, rules));
}

/** The primary key of an already normalised path (the hit path normalises once). */
export function keyOf(host: string | undefined, normalised: string): string {
  const h = (host ?? "").toLowerCase();
  return `${h.endsWith(":80") ? h.slice(0, -3) : h}${normalised}`;
}
