/** Plain-HTTP and matrix-js-sdk helpers for e2e tests: call the API, register users, make SDK clients. */
import { ClientEvent, createClient, type IStartClientOpts, type MatrixClient, SyncState } from "matrix-js-sdk";
import { logger as sdkRootLogger } from "matrix-js-sdk/lib/logger.js";

/*
 * matrix-js-sdk 43 arms a setTimeout per request (pollTimeout + 80 s for /sync) and never clears it, which
 * keeps a finished test file alive for ~2 minutes. Long timers in test processes must not hold the loop open.
 */
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = ((fn: (...a: any[]) => void, ms?: number, ...args: any[]) => {
  const t = realSetTimeout(fn, ms, ...args);
  if ((ms ?? 0) >= 30_000) t.unref();
  return t;
}) as typeof setTimeout;

// The SDK's module-level loggers print every request at debug level; keep test output readable.
if (!process.env.AMI_E2E_SDK_LOG) {
  const root = sdkRootLogger as unknown as { methodFactory: unknown; rebuild(): void };
  root.methodFactory = () => () => {};
  root.rebuild();
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: any;
  text: string;
}

export interface ApiOptions {
  token?: string;
  /** JSON-encoded unless it is a string or Buffer (sent as is). */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** One request against the homeserver. Never throws on HTTP errors: tests look at status and body. */
export async function api(base: string, method: string, path: string, opts: ApiOptions = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  let body: string | Uint8Array<ArrayBuffer> | undefined;
  if (opts.body !== undefined) {
    if (typeof opts.body === "string") body = opts.body;
    else if (opts.body instanceof Uint8Array) body = new Uint8Array(opts.body);
    else body = JSON.stringify(opts.body);
    headers["Content-Type"] ??= "application/json";
  }
  const res = await fetch(base + path, { method, headers, body, signal: opts.signal });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** Like api() but throws unless the status is 200. */
export async function ok(base: string, method: string, path: string, opts: ApiOptions = {}): Promise<any> {
  const r = await api(base, method, path, opts);
  if (r.status !== 200) throw new Error(`${method} ${path} -> ${r.status} ${r.text.slice(0, 500)}`);
  return r.json;
}

export interface Session {
  userId: string;
  accessToken: string;
  deviceId: string;
}

/**
 * Register through the user-interactive flow the spec describes: a first POST without `auth` answers 401 with a
 * session and the flows; the second completes m.login.dummy.
 */
export async function registerUser(
  base: string,
  username: string,
  password = "correct horse battery",
): Promise<Session> {
  const req = { username, password, initial_device_display_name: `${username}'s e2e device` };
  const path = "/_matrix/client/v3/register";
  let r = await api(base, "POST", path, { body: req });
  if (r.status === 401) {
    r = await api(base, "POST", path, { body: { ...req, auth: { type: "m.login.dummy", session: r.json?.session } } });
  }
  if (r.status !== 200) throw new Error(`register ${username} -> ${r.status} ${r.text}`);
  return { userId: r.json.user_id, accessToken: r.json.access_token, deviceId: r.json.device_id };
}

/** Password login through POST /login. */
export async function loginUser(base: string, user: string, password = "correct horse battery"): Promise<Session> {
  const j = await ok(base, "POST", "/_matrix/client/v3/login", {
    body: { type: "m.login.password", identifier: { type: "m.id.user", user }, password },
  });
  return { userId: j.user_id, accessToken: j.access_token, deviceId: j.device_id };
}

const quiet = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
  getChild() {
    return quiet;
  },
};

/** A matrix-js-sdk client for a session, or an anonymous one (default MemoryStore, no crypto). */
export function sdkClient(base: string, s?: Session, verbose = !!process.env.AMI_E2E_SDK_LOG): MatrixClient {
  return createClient({
    baseUrl: base,
    ...(s ? { accessToken: s.accessToken, userId: s.userId, deviceId: s.deviceId } : {}),
    ...(verbose ? {} : { logger: quiet }),
  });
}

/** Start a client and resolve once its first sync has been processed (Prepared or Syncing). */
export async function startSynced(c: MatrixClient, opts: IStartClientOpts = {}): Promise<void> {
  const ready = new Promise<void>((resolve) => {
    const on = (s: SyncState) => {
      if (s === SyncState.Prepared || s === SyncState.Syncing) {
        c.off(ClientEvent.Sync, on);
        resolve();
      }
    };
    c.on(ClientEvent.Sync, on);
  });
  await c.startClient(opts);
  await ready;
}

/** Poll `fn` until it returns a truthy value (or throw after `timeoutMs`, naming `what`). */
export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 20_000,
  everyMs = 20,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Seeded PRNG (mulberry32): fuzzing and load runs are reproducible from their seed. */
export { rng as prng } from "../../../src/core/prng.ts";

export const enc = encodeURIComponent;
