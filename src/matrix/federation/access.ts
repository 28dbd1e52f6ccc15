/**
 * Which servers we talk to (`matrix.federation.allow` / `deny`): globs as in m.room.server_acl (`*` any run of
 * characters, `?` one), matched against the server name without its port, case-insensitively. Deny wins.
 */
import type { MatrixConfig } from "../config.ts";

export function globToRegExp(glob: string): RegExp {
  const body = glob
    .toLowerCase()
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/** The host part of a server name: `example.org:8448` -> `example.org`, `[::1]:80` -> `[::1]`. */
export function serverHost(serverName: string): string {
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(serverName);
  return (m ? m[1] : serverName).toLowerCase();
}

export class ServerAccess {
  readonly #allow: RegExp[];
  readonly #deny: RegExp[];

  constructor(cfg: Pick<MatrixConfig["federation"], "allow" | "deny">) {
    this.#allow = cfg.allow.map(globToRegExp);
    this.#deny = cfg.deny.map(globToRegExp);
  }

  allowed(serverName: string): boolean {
    const host = serverHost(serverName);
    if (this.#deny.some((r) => r.test(host))) return false;
    return this.#allow.some((r) => r.test(host));
  }
}
