/**
 * How the CLI/MCP ops reach the running homeserver: plain HTTP to the configured host/port, the
 * shared-secret admin registration, and a service account (`@ami-streams:<server>`, admin) whose token is
 * cached in <home>/run/matrix-ops-token.json and re-created when the server rejects it.
 */
import { createHmac } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AmiError, type ErrorCode, ErrorCodes } from "../../core/errors.ts";
import { baseUrl } from "../../core/http/address.ts";
import type { OpContext } from "../../core/ops.ts";
import { field } from "../events/types.ts";

export const SERVICE_LOCALPART = "ami-streams";
const NOT_RUNNING = "matrix is not running: start it with `ami-streams matrix start`";

/** The homeserver's local URL from the config (a wildcard bind is reached on loopback). */
export function homeserverUrl(ctx: OpContext): string {
  const { host, port } = ctx.config.matrix;
  return baseUrl("http", host, port);
}

/** The secret for /_synapse/admin/v1/register: config, else the file the homeserver generated. */
export function sharedSecret(ctx: OpContext): string {
  const fromConfig = ctx.config.matrix.registration.sharedSecret;
  if (fromConfig) return fromConfig;
  const path = join(ctx.paths.serviceData("matrix"), "registration_shared_secret");
  if (!existsSync(path)) throw new AmiError("AMI_NOT_RUNNING", NOT_RUNNING);
  return readFileSync(path, "utf8").trim();
}

/** One Matrix API call; Matrix errors become AmiErrors with the server's errcode. */
export async function api<T = any>(
  ctx: OpContext,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown } = {},
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(homeserverUrl(ctx) + path, {
      method,
      headers: {
        ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}),
        ...(opts.body !== undefined ? { "Content-Type": "application/json" } : {}),
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: ctx.signal,
    });
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    throw new AmiError("AMI_NOT_RUNNING", NOT_RUNNING);
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    throw new AmiError("AMI_UNAVAILABLE", `homeserver answered ${res.status} with non-JSON for ${method} ${path}`);
  }
  if (!res.ok) {
    const errcode = field(data, "errcode");
    const code = typeof errcode === "string" && errcode in ErrorCodes ? (errcode as ErrorCode) : "AMI_UNAVAILABLE";
    throw new AmiError(code, String(field(data, "error") ?? `HTTP ${res.status}`), {}, res.status);
  }
  return data as T;
}

/** Shared-secret registration exactly as `register_new_matrix_user` does it. */
export async function registerWithSecret(
  ctx: OpContext,
  p: { username: string; password: string; admin: boolean; displayname?: string },
): Promise<{ user_id: string; access_token: string; device_id: string }> {
  const secret = sharedSecret(ctx);
  const { nonce } = await api<{ nonce: string }>(ctx, "GET", "/_synapse/admin/v1/register");
  const mac = createHmac("sha1", secret)
    .update(`${nonce}\0${p.username}\0${p.password}\0${p.admin ? "admin" : "notadmin"}`)
    .digest("hex");
  return api(ctx, "POST", "/_synapse/admin/v1/register", {
    body: { nonce, username: p.username, password: p.password, admin: p.admin, displayname: p.displayname, mac },
  });
}

interface CachedToken {
  userId: string;
  accessToken: string;
  url: string;
}

const tokenFile = (ctx: OpContext) => join(ctx.paths.run, "matrix-ops-token.json");

// Derived from the shared secret, so a lost token file never locks the service account out.
export const servicePassword = (ctx: OpContext) =>
  createHmac("sha256", sharedSecret(ctx)).update("ami-streams service account").digest("base64url");

async function createServiceToken(ctx: OpContext): Promise<CachedToken> {
  const password = servicePassword(ctx);
  let r: { user_id: string; access_token: string };
  try {
    r = await registerWithSecret(ctx, {
      username: SERVICE_LOCALPART,
      password,
      admin: true,
      displayname: "ami-streams",
    });
  } catch (e) {
    if (!(e instanceof AmiError) || e.code !== "M_USER_IN_USE") throw e;
    r = await api(ctx, "POST", "/_matrix/client/v3/login", {
      body: {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: SERVICE_LOCALPART },
        password,
        device_id: "AMI_STREAMS_OPS",
        initial_device_display_name: "ami-streams CLI/MCP",
      },
    });
  }
  const cached = { userId: r.user_id, accessToken: r.access_token, url: homeserverUrl(ctx) };
  const path = tokenFile(ctx);
  writeFileSync(`${path}.tmp`, JSON.stringify(cached), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
  return cached;
}

function readCached(ctx: OpContext): CachedToken | null {
  try {
    const c = JSON.parse(readFileSync(tokenFile(ctx), "utf8")) as CachedToken;
    return typeof c.accessToken === "string" && c.url === homeserverUrl(ctx) ? c : null;
  } catch {
    return null;
  }
}

/** Call the API as the service account, re-creating its token once if the server rejects it. */
export async function asService<T = any>(ctx: OpContext, method: string, path: string, body?: unknown): Promise<T> {
  let tok = readCached(ctx) ?? (await createServiceToken(ctx));
  try {
    return await api<T>(ctx, method, path, { token: tok.accessToken, body });
  } catch (e) {
    if (!(e instanceof AmiError) || e.code !== "M_UNKNOWN_TOKEN") throw e;
    tok = await createServiceToken(ctx);
    return api<T>(ctx, method, path, { token: tok.accessToken, body });
  }
}

/** The service account's user ID (registering it if needed). */
export async function serviceUserId(ctx: OpContext): Promise<string> {
  return (await asService<{ user_id: string }>(ctx, "GET", "/_matrix/client/v3/account/whoami")).user_id;
}

/** `alice` or `@alice:server` -> full user ID on the configured server. */
export function fullUserId(ctx: OpContext, user: string): string {
  return user.startsWith("@") ? user : `@${user}:${ctx.config.matrix.serverName}`;
}

/** A room ID, or an alias resolved through the directory. */
export async function resolveRoom(ctx: OpContext, room: string): Promise<string> {
  if (room.startsWith("!")) return room;
  if (!room.startsWith("#"))
    throw new AmiError("AMI_INVALID_INPUT", `'${room}' is neither a room ID (!...) nor an alias (#...)`);
  const r = await asService<{ room_id: string }>(
    ctx,
    "GET",
    `/_matrix/client/v3/directory/room/${encodeURIComponent(room)}`,
  );
  return r.room_id;
}
