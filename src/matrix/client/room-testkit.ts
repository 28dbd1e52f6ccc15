/**
 * Test support for the room tests: a real homeserver on a free port (SQLite in memory, or a fresh
 * PostgreSQL database), users made through the store + auth service, and a small fetch wrapper.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../core/logger.ts";
import { matrixSchema } from "../config.ts";
import { startHomeserver } from "../homeserver.ts";
import type { Homeserver } from "../hs.ts";

export const PG_ADMIN_URL = process.env.AMI_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: the server's JSON as the tests read it; the assertions are the check
  body: any;
}

export interface TestUser {
  userId: string;
  deviceId: string;
  token: string;
  call(method: string, path: string, body?: unknown): Promise<Reply>;
}

export interface TestServer {
  hs: Homeserver;
  url: string;
  serverName: string;
  user(localpart: string, opts?: { displayname?: string; admin?: boolean }): Promise<TestUser>;
  call(method: string, path: string, body?: unknown, token?: string): Promise<Reply>;
  close(): Promise<void>;
}

async function freshPgDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const { default: pg } = await import("pg");
  const name = `ami_rooms_${process.pid}_${Date.now()}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  return {
    url,
    async drop() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export async function startTestServer(
  opts: { backend?: "sqlite" | "postgres"; config?: Record<string, unknown> } = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "ami-rooms-"));
  const pgDb = opts.backend === "postgres" ? await freshPgDatabase() : null;
  const generous = { perSecond: 100_000, burst: 100_000 };
  const config = matrixSchema.parse({
    serverName: "rooms.test",
    port: 0,
    database: pgDb?.url ?? "sqlite::memory:",
    limits: { perUser: generous, perIp: generous },
    ...opts.config,
  });
  const running = await startHomeserver(config, dir, silentLogger);
  const call = async (method: string, path: string, body?: unknown, token?: string): Promise<Reply> => {
    const headers: Record<string, string> = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(running.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed };
  };
  const hs = running.hs;
  return {
    hs,
    url: running.url,
    serverName: config.serverName,
    call,
    async user(localpart, o = {}) {
      const userId = `@${localpart}:${config.serverName}`;
      await hs.store.accounts.createUser({
        userId,
        passwordHash: null,
        createdTs: Date.now(),
        admin: o.admin ?? false,
        deactivated: false,
        isGuest: false,
        displayname: o.displayname ?? null,
        avatarUrl: null,
      });
      const { accessToken, deviceId } = await hs.auth.createSession(userId, {});
      return { userId, deviceId, token: accessToken, call: (m, p, b) => call(m, p, b, accessToken) };
    },
    async close() {
      await running.close();
      await pgDb?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const enc = encodeURIComponent;
export const V3 = "/_matrix/client/v3";
