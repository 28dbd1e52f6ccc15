/**
 * What every Synapse-compatible admin route shares: the server-admin check, Synapse's paging parameters
 * (`from` offset, `limit`, `dir`), boolean and enum query parameters, the local-user lookup and Synapse's admin
 * user object.
 */
import { AmiError } from "../../core/errors.ts";
import type { MatrixRequest, Route } from "../http/types.ts";
import { parseLocalUserId } from "../service/registration.ts";
import type { UserRow } from "../store/types.ts";
import { queryInt } from "../validate.ts";

/** 403 M_FORBIDDEN unless the requester is a server admin. */
export function requireAdmin(req: MatrixRequest): void {
  if (!req.requester?.isAdmin) throw new AmiError("M_FORBIDDEN", "You are not a server admin");
}

/** A `true`/`false` query parameter; absent: `def`. */
export function boolQuery<D extends boolean | undefined>(q: URLSearchParams, name: string, def: D): boolean | D {
  const v = q.get(name);
  if (v === null) return def;
  if (v !== "true" && v !== "false") throw new AmiError("M_INVALID_PARAM", `'${name}' must be true or false`);
  return v === "true";
}

/** A query parameter that must be one of `values`; absent: `def`. */
export function enumQuery<T extends string>(q: URLSearchParams, name: string, values: readonly T[], def: T): T {
  const v = q.get(name);
  if (v === null || v === "") return def;
  if (!(values as readonly string[]).includes(v))
    throw new AmiError("M_INVALID_PARAM", `'${name}' must be one of ${values.join(", ")}`);
  return v as T;
}

/** Synapse's paging: `from` (an offset, default 0), `limit` (default 100) and `dir` (f|b, default `defDir`). */
export function pageQuery(q: URLSearchParams, defDir: "f" | "b" = "f") {
  return {
    offset: queryInt(q, "from", 0, 0),
    limit: queryInt(q, "limit", 100, 0, 10_000),
    dir: enumQuery(q, "dir", ["f", "b"] as const, defDir),
  };
}

/** The page's `next_token` as Synapse gives it: the next offset, only when more rows follow. */
export function nextToken(offset: number, got: number, total: number): { next_token?: number } {
  return offset + got < total ? { next_token: offset + got } : {};
}

/** The path's `{userId}`, which must be local (400 otherwise, as Synapse), and its row if it exists. */
export async function localUser(req: MatrixRequest): Promise<{ userId: string; user: UserRow | null }> {
  const userId = req.params.userId;
  if (!parseLocalUserId(req.hs, userId).local) throw new AmiError("M_INVALID_PARAM", "Can only look up local users");
  return { userId, user: await req.hs.store.accounts.getUser(userId) };
}

/** localUser that must exist: 404 M_NOT_FOUND otherwise. */
export async function existingLocalUser(req: MatrixRequest): Promise<UserRow> {
  const { user } = await localUser(req);
  if (!user) throw new AmiError("M_NOT_FOUND", "User not found");
  return user;
}

/** Synapse's admin user object (GET /_synapse/admin/v2/users/{userId}). */
export function userJson(u: UserRow): Record<string, unknown> {
  return {
    name: u.userId,
    displayname: u.displayname,
    avatar_url: u.avatarUrl,
    admin: u.admin,
    deactivated: u.deactivated,
    is_guest: u.isGuest,
    user_type: null,
    creation_ts: u.createdTs,
    shadow_banned: !!u.shadowBanned,
    locked: !!u.locked,
    suspended: !!u.suspended,
    erased: false,
    approved: true,
    appservice_id: null,
    consent_server_notice_sent: null,
    consent_version: null,
    consent_ts: null,
    threepids: [],
    external_ids: [],
    last_seen_ts: null,
  };
}

/** An admin API route: authenticated, server admins only (requireAdmin before the handler runs). */
export function adminRoute(
  method: Route["method"],
  paths: string[],
  handler: Route["handler"],
  extra: Pick<Route, "body"> = {},
): Route {
  return {
    method,
    paths,
    auth: "required",
    ...extra,
    handler: (req) => {
      requireAdmin(req);
      return handler(req);
    },
  };
}
