/** How a listening address is written in a URL a client can use (one rule for every listener). */

/** `0.0.0.0` → `127.0.0.1`, `::` → `[::1]`, other IPv6 literals bracketed, names as they are. */
export function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "[::1]";
  if (host.includes(":") && !host.startsWith("[")) return `[${host}]`;
  return host;
}

/** True for addresses that listen on every interface. */
export const isWildcardHost = (host: string): boolean =>
  host === "0.0.0.0" || host === "::" || host === "[::]" || host === "";

/** `http://127.0.0.1:8008`-style base URL for a listener. */
export const baseUrl = (scheme: string, host: string, port: number): string => `${scheme}://${urlHost(host)}:${port}`;
