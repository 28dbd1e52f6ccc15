/**
 * Test kit for the account/auth/media/admin tests: an in-process homeserver on SQLite or a throwaway
 * PostgreSQL database, a fetch wrapper, and a log that records internal errors (a 500 is always a bug).
 */
import { rmSync } from "node:fs";
import { configSchema } from "../../src/config.ts";
import { createLogger } from "../../src/core/logger.ts";
import { type RunningHomeserver, startHomeserver } from "../../src/matrix/homeserver.ts";
import { type Backend, createTestDatabase, tempDir, testMatrixConfig } from "./helpers/homeserver.ts";

export const V3 = "/_matrix/client/v3";
export const enc = encodeURIComponent;

export interface Res {
  status: number;
  body: any;
  headers: Headers;
}

export interface Kit extends RunningHomeserver {
  dataDir: string;
  /** Error-level log lines (internal errors) seen so far. */
  errors: string[];
  call(method: string, path: string, body?: unknown, token?: string, headers?: Record<string, string>): Promise<Res>;
  /** Register through /register (m.login.dummy) and return the login. */
  register(username: string, password?: string): Promise<{ userId: string; token: string; deviceId: string }>;
  login(user: string, password: string, extra?: Record<string, unknown>): Promise<Res>;
  dispose(): Promise<void>;
}

export async function startKit(backend: Backend = "sqlite", matrix: Record<string, any> = {}): Promise<Kit> {
  const dataDir = tempDir("ami-acct-");
  const db = await createTestDatabase(backend, dataDir);
  const config = configSchema.parse({ matrix: testMatrixConfig({ database: db.database, ...matrix }) });
  const errors: string[] = [];
  const log = createLogger({ level: "warn", write: (l) => void (l.includes('"level":"error"') && errors.push(l)) });
  const running = await startHomeserver(config.matrix, dataDir, log);
  const call: Kit["call"] = async (method, path, body, token, headers = {}) => {
    const h: Record<string, string> = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    let payload: BodyInit | undefined;
    if (Buffer.isBuffer(body)) payload = new Uint8Array(body);
    else if (typeof body === "string") payload = body;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      h["Content-Type"] ??= "application/json";
    }
    const res = await fetch(running.url + path, { method, headers: h, body: payload });
    const buf = Buffer.from(await res.arrayBuffer());
    let parsed: any = buf;
    if ((res.headers.get("content-type") ?? "").startsWith("application/json"))
      parsed = JSON.parse(buf.toString("utf8"));
    return { status: res.status, body: parsed, headers: res.headers };
  };
  const kit: Kit = {
    ...running,
    dataDir,
    errors,
    call,
    async register(username, password = "correct horse battery") {
      const r = await call("POST", `${V3}/register`, { username, password, auth: { type: "m.login.dummy" } });
      if (r.status !== 200) throw new Error(`register ${username}: ${r.status} ${JSON.stringify(r.body)}`);
      return { userId: r.body.user_id, token: r.body.access_token, deviceId: r.body.device_id };
    },
    login: (user, password, extra = {}) =>
      call("POST", `${V3}/login`, {
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        ...extra,
      }),
    async dispose() {
      await running.close();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return kit;
}
