/**
 * Which servers we talk to (`matrix.federation.allow` / `deny`): globs as in m.room.server_acl (`*` any run of
 * characters, `?` one), matched against the server name without its port, case-insensitively. Deny wins.
 */
import type { MatrixConfig } from "../config.ts";
import type { Homeserver } from "../hs.ts";

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

const IP_LITERAL = /^(\[[0-9a-f:.]+\]|\d{1,3}(\.\d{1,3}){3})$/i;

/** m.room.server_acl content admits `server` (spec "Server Access Control Lists"); no ACL admits everyone. */
export function aclAllows(content: Record<string, unknown> | undefined, server: string): boolean {
  if (!content) return true;
  const host = serverHost(server);
  const list = (v: unknown) => (Array.isArray(v) ? v.filter((g): g is string => typeof g === "string") : []);
  if (content.allow_ip_literals === false && IP_LITERAL.test(host)) return false;
  if (list(content.deny).some((g) => globToRegExp(g).test(host))) return false;
  return list(content.allow).some((g) => globToRegExp(g).test(host));
}

/** The room's current m.room.server_acl admits `origin` (rooms without one admit every server). */
export async function roomAdmits(hs: Homeserver, roomId: string, origin: string): Promise<boolean> {
  const acl = await hs.store.events.getCurrentStateEvent(roomId, "m.room.server_acl", "");
  return aclAllows(acl?.pdu.content, origin);
}
