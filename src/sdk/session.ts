/**
 * An agent's login, kept in <storeDir>/session.json (mode 0600) next to its crypto store, and a lock file so
 * two processes never drive the same device's Olm state at once (that would fork its ratchets).
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AmiError, type ErrorCode, ErrorCodes } from "../core/errors.ts";

export interface StoredSession {
  homeserverUrl: string;
  userId: string;
  deviceId: string;
  accessToken: string;
}

export interface Credentials {
  homeserverUrl: string;
  /** Full user ID; or `username` (a localpart or user ID) for password login. */
  userId?: string;
  username?: string;
  password?: string;
  accessToken?: string;
  deviceId?: string;
  deviceName?: string;
}

const sessionFile = (dir: string) => join(dir, "session.json");

export function readSession(dir: string): StoredSession | null {
  try {
    const s = JSON.parse(readFileSync(sessionFile(dir), "utf8")) as StoredSession;
    return typeof s.accessToken === "string" && typeof s.deviceId === "string" ? s : null;
  } catch {
    return null;
  }
}

export function writeSession(dir: string, s: StoredSession): void {
  const path = sessionFile(dir);
  writeFileSync(`${path}.tmp`, JSON.stringify(s), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

async function call<T>(url: string, method: string, path: string, token?: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url.replace(/\/$/, "") + path, {
      method,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new AmiError("AMI_UNAVAILABLE", `cannot reach ${url}: ${(e as Error).message}`);
  }
  const data = (await res.json().catch(() => ({}))) as any;
  if (!res.ok) {
    const code =
      typeof data?.errcode === "string" && data.errcode in ErrorCodes ? (data.errcode as ErrorCode) : "M_UNKNOWN";
    throw new AmiError(code, String(data?.error ?? `HTTP ${res.status} for ${method} ${path}`), {}, res.status);
  }
  return data as T;
}

const whoami = (url: string, token: string) =>
  call<{ user_id: string; device_id?: string }>(url, "GET", "/_matrix/client/v3/account/whoami", token);

async function passwordLogin(c: Credentials, deviceId: string | undefined): Promise<StoredSession> {
  const user = c.userId ?? c.username;
  if (!user || !c.password)
    throw new AmiError("AMI_INVALID_INPUT", "password login needs a userId/username and a password");
  const r = await call<{ user_id: string; device_id: string; access_token: string }>(
    c.homeserverUrl,
    "POST",
    "/_matrix/client/v3/login",
    undefined,
    {
      type: "m.login.password",
      identifier: { type: "m.id.user", user },
      password: c.password,
      ...(deviceId ? { device_id: deviceId } : {}),
      initial_device_display_name: c.deviceName ?? "ami-streams agent",
    },
  );
  return { homeserverUrl: c.homeserverUrl, userId: r.user_id, deviceId: r.device_id, accessToken: r.access_token };
}

/**
 * The session to run with. A stored one is reused while its token works (re-logging in to the SAME device when
 * it expired), but only if its crypto store exists too: a device whose keys are lost must not be reused.
 */
export async function resolveSession(
  c: Credentials,
  stored: StoredSession | null,
  haveCryptoStore: boolean,
): Promise<StoredSession> {
  const sameAccount =
    stored &&
    stored.homeserverUrl === c.homeserverUrl &&
    (!c.userId || c.userId === stored.userId) &&
    (!c.deviceId || c.deviceId === stored.deviceId);
  if (stored && sameAccount && haveCryptoStore) {
    try {
      await whoami(c.homeserverUrl, stored.accessToken);
      return stored;
    } catch (e) {
      if (!(e instanceof AmiError) || e.code !== "M_UNKNOWN_TOKEN") throw e;
    }
    if (c.password) return passwordLogin({ ...c, userId: c.userId ?? stored.userId }, stored.deviceId);
  }
  if (c.accessToken) {
    const w = await whoami(c.homeserverUrl, c.accessToken);
    const deviceId = w.device_id ?? c.deviceId;
    if (!deviceId) throw new AmiError("AMI_INVALID_INPUT", "the access token has no device; pass deviceId");
    if (c.deviceId && c.deviceId !== deviceId)
      throw new AmiError("AMI_INVALID_INPUT", `the access token belongs to device ${deviceId}, not ${c.deviceId}`);
    return { homeserverUrl: c.homeserverUrl, userId: w.user_id, deviceId, accessToken: c.accessToken };
  }
  return passwordLogin(c, c.deviceId);
}

/** Exclusive use of a store directory; waits for another holder (a live pid) up to `timeoutMs`. */
export async function lockStore(dir: string, timeoutMs: number): Promise<() => void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, "lock");
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const pid = Number(readFileSync(path, "utf8").trim());
    if (!alive(pid)) {
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() > end)
      throw new AmiError("AMI_TIMEOUT", `the agent store ${dir} is in use by process ${pid} (lock file ${path})`);
    await sleep(100);
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
