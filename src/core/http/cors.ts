/**
 * Per-route CORS. `public` (`*`) is for what any page may read: the Matrix client-server API (the spec
 * requires it; its tokens are bearer headers a page must already hold), playlists and segments.
 * A route that needs a token for anything secret, or returns a secret, answers with no CORS header at all
 * unless the operator lists origins.
 */
export type CorsPolicy = "public" | "none" | { origins: readonly string[] };

const METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS";
const HEADERS = "X-Requested-With, Content-Type, Authorization, Date";

export function corsHeaders(policy: CorsPolicy, origin: string | undefined): Record<string, string> {
  if (policy === "none") return {};
  if (policy === "public")
    return {
      "Access-Control-Allow-Origin": "*",
      "Access-Control-Allow-Methods": METHODS,
      "Access-Control-Allow-Headers": HEADERS,
    };
  if (!origin || !policy.origins.includes(origin)) return {};
  return {
    "Access-Control-Allow-Origin": origin,
    "Access-Control-Allow-Methods": METHODS,
    "Access-Control-Allow-Headers": HEADERS,
    Vary: "Origin",
  };
}
