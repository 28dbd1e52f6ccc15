/**
 * E2E harness: start the real homeserver in a child process (so a test can kill -9 it and read its memory)
 * or in-process (quick tests), on SQLite or on a throwaway PostgreSQL database.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { configSchema } from "../../../src/config.ts";
import { createHttpListener } from "../../../src/core/http/server.ts";
import { silentLogger } from "../../../src/core/logger.ts";
import { type RunningHomeserver, startHomeserver } from "../../../src/matrix/homeserver.ts";
import { WsHub } from "../../../src/matrix/websocket/hub.ts";

export type Backend = "sqlite" | "postgres";
export const BACKENDS: Backend[] = ["sqlite", "postgres"];

/** The admin connection used to create and drop throwaway databases. */
export const PG_ADMIN_URL = process.env.AMI_E2E_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

const CHILD = fileURLToPath(new URL("./hs-child.ts", import.meta.url));

/** A partial `matrix` config for tests: registration open with m.login.dummy, rate and connection limits out of the way. */
export function testMatrixConfig(overrides: Record<string, any> = {}): Record<string, any> {
  const base: Record<string, any> = {
    serverName: "localhost",
    host: "127.0.0.1",
    port: 0,
    registration: { enabled: true },
    limits: {
      perUser: { perSecond: 1_000_000, burst: 1_000_000 },
      perIp: { perSecond: 1_000_000, burst: 1_000_000 },
      // Tests and benches open every connection from 127.0.0.1 (1,000+ WebSockets in the fan-out bench).
      maxConnectionsPerAddress: 100_000,
      maxConnections: 100_000,
    },
  };
  return merge(base, overrides);
}

function merge(a: Record<string, any>, b: Record<string, any>): Record<string, any> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === "object" && !Array.isArray(v) && a[k] && typeof a[k] === "object" ? merge(a[k], v) : v;
  }
  return out;
}

export interface TestDatabase {
  backend: Backend;
  /** The `matrix.database` config value. */
  database: string;
  drop(): Promise<void>;
}

/** SQLite: a file in `dataDir`. PostgreSQL: a fresh `ami_e2e_<random>` database, dropped by drop(). */
export async function createTestDatabase(backend: Backend, dataDir: string): Promise<TestDatabase> {
  if (backend === "sqlite")
    return { backend, database: `sqlite:${join(dataDir, "homeserver.db")}`, drop: async () => {} };
  const name = `ami_e2e_${randomBytes(6).toString("hex")}`;
  await pgAdmin(`CREATE DATABASE ${name}`);
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    backend,
    database: u.toString(),
    drop: () => pgAdmin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/** One statement on the admin database (CREATE/DROP DATABASE). */
export async function pgAdmin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export function tempDir(prefix = "ami-e2e-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface ChildOptions {
  backend?: Backend;
  /** Partial matrix config merged over testMatrixConfig(). */
  matrix?: Record<string, any>;
  /** Environment for the child (e.g. AMI_LOG_LEVEL). */
  env?: Record<string, string>;
  /**
   * Another worker of `sharedWith`'s homeserver (matrix.workers > 1): the same data dir and database, which stay
   * until that one is disposed.
   */
  sharedWith?: ChildHomeserver;
}

/** A homeserver in a child process. `restart()` reuses its data dir, database and port. */
export class ChildHomeserver {
  readonly dataDir: string;
  readonly db: TestDatabase;
  readonly matrix: Record<string, any>;
  readonly env: Record<string, string>;
  url = "";
  /** Every stderr line of every run (JSON log lines), for post-mortems and "no internal error" checks. */
  readonly logLines: string[] = [];
  #proc: ChildProcess | null = null;
  #exited: Promise<number | null> = Promise.resolve(null);
  /** Another worker's data dir and database: dispose() leaves them. */
  #shared = false;

  private constructor(dataDir: string, db: TestDatabase, matrix: Record<string, any>, env: Record<string, string>) {
    this.dataDir = dataDir;
    this.db = db;
    this.matrix = matrix;
    this.env = env;
  }

  static async start(opts: ChildOptions = {}): Promise<ChildHomeserver> {
    if (opts.sharedWith) {
      const o = opts.sharedWith;
      const hs = new ChildHomeserver(o.dataDir, o.db, { ...o.matrix, ...opts.matrix, port: 0 }, opts.env ?? o.env);
      hs.#shared = true;
      await hs.#spawn();
      return hs;
    }
    const dataDir = tempDir();
    const db = await createTestDatabase(opts.backend ?? "sqlite", dataDir);
    const hs = new ChildHomeserver(
      dataDir,
      db,
      testMatrixConfig({ ...opts.matrix, database: db.database }),
      opts.env ?? {},
    );
    try {
      await hs.#spawn();
    } catch (e) {
      await hs.dispose();
      throw e;
    }
    return hs;
  }

  get pid(): number {
    if (!this.#proc?.pid) throw new Error("homeserver child is not running");
    return this.#proc.pid;
  }

  get running(): boolean {
    return this.#proc !== null && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  async #spawn(): Promise<void> {
    const port = this.url ? Number(new URL(this.url).port) : (this.matrix.port ?? 0);
    // Started the way the supervisor starts the service (src/control/runner.ts): small young generation,
    // compile cache on (so a warm start skips the TypeScript stripper), so memory figures are the real ones.
    // AMI_E2E_NODE_FLAGS (the child's env, else this process's): extra node/V8 flags, for benches' experiments.
    const flags = (this.env.AMI_E2E_NODE_FLAGS ?? process.env.AMI_E2E_NODE_FLAGS ?? "").split(" ").filter(Boolean);
    const proc = spawn(process.execPath, ["--max-semi-space-size=1", ...flags, CHILD], {
      env: {
        NODE_COMPILE_CACHE: join(tmpdir(), "node-compile-cache"),
        MALLOC_MMAP_THRESHOLD_: "131072",
        ...process.env,
        ...this.env,
        AMI_E2E_MATRIX: JSON.stringify({ ...this.matrix, port }),
        AMI_E2E_DATA_DIR: this.dataDir,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
    let errBuf = "";
    proc.stderr!.setEncoding("utf8").on("data", (d: string) => {
      errBuf += d;
      const lines = errBuf.split("\n");
      errBuf = lines.pop()!;
      for (const l of lines) if (this.logLines.length < 20_000) this.logLines.push(l);
    });
    this.url = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => fail(new Error("homeserver child did not start within 30 s")), 30_000);
      const fail = (e: Error) => {
        clearTimeout(timer);
        proc.kill("SIGKILL");
        reject(new Error(`${e.message}\n--- child stderr ---\n${this.logLines.slice(-30).join("\n")}${errBuf}`));
      };
      proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
        // AMI_E2E_STDOUT_DIR: the child's stdout into <dir>/<pid>.log too (e.g. with --trace-gc in AMI_E2E_NODE_FLAGS).
        if (process.env.AMI_E2E_STDOUT_DIR) appendFileSync(`${process.env.AMI_E2E_STDOUT_DIR}/${proc.pid}.log`, d);
        out += d;
        const m = /LISTENING (\S+)\n/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      proc.once("exit", (code, sig) => fail(new Error(`homeserver child exited early (code ${code}, signal ${sig})`)));
    });
  }

  /** SIGTERM and wait for a clean exit (SIGKILL after 10 s). */
  async stop(): Promise<number | null> {
    if (!this.running) return null;
    const proc = this.#proc!;
    const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    proc.kill("SIGTERM");
    const code = await this.#exited;
    clearTimeout(t);
    this.#proc = null;
    return code;
  }

  /** kill -9: no chance to flush or close anything. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.#proc!.kill("SIGKILL");
    await this.#exited;
    this.#proc = null;
  }

  /** Start again on the same data dir, database and port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#spawn();
  }

  /** Start again after kill() (same as restart, without the stop). */
  async start(): Promise<void> {
    if (this.running) throw new Error("already running");
    await this.#spawn();
  }

  /** Resident set size of the child in bytes, from /proc/<pid>/status. */
  rssBytes(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, "utf8"));
    if (!m) throw new Error("no VmRSS in /proc status");
    return Number(m[1]) * 1024;
  }

  /** Log lines at level "error" (the edge logs every internal error before answering 500). */
  errorLines(): string[] {
    return this.logLines.filter((l) => l.includes('"level":"error"'));
  }

  /** Stop, drop the database and remove the data dir. */
  async dispose(): Promise<void> {
    await this.stop().catch(() => {});
    if (this.#shared) return;
    await this.db.drop().catch(() => {});
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** In-process homeserver for quick tests (SQLite file in a temp dir unless `matrix.database` is given). */
export async function startInProcess(
  matrix: Record<string, any> = {},
): Promise<RunningHomeserver & { dataDir: string; dispose(): Promise<void> }> {
  const dataDir = tempDir();
  const config = configSchema.parse({
    matrix: testMatrixConfig({ database: `sqlite:${join(dataDir, "hs.db")}`, ...matrix }),
  });
  const running = await startHomeserver(config.matrix, dataDir, silentLogger);
  return {
    ...running,
    dataDir,
    async dispose() {
      await running.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A WebSocket hub of the test's own on a second listener, so a test can read its counters (wake-ups, fast frames). */
export async function ownWsHub(hs: RunningHomeserver): Promise<{ hub: WsHub; wsBase: string; close(): Promise<void> }> {
  const hub = new WsHub(hs.hs);
  const listener = createHttpListener({
    name: "test ws hub",
    log: silentLogger,
    handler: (_req, res) => res.end(),
    upgrade: (req, socket, head, target) => hub.upgrade(req, socket, head, target),
  });
  const port = await listener.listen(0, "127.0.0.1");
  return {
    hub,
    wsBase: `http://127.0.0.1:${port}`,
    async close() {
      hub.close();
      await listener.close();
    },
  };
}

/**
 * For unit tests next to the homeserver code: a real in-process homeserver on SQLite in a temp dir, started in the
 * test file's `before` (with `users`, local users made directly in the store, no password) and closed, its dir
 * removed, in its `after`. Read `.running` inside the tests.
 */
export function homeserverPerFile(
  prefix: string,
  opts: { users?: string[]; matrix?: Record<string, any> } = {},
): { readonly running: RunningHomeserver } {
  let running: RunningHomeserver | undefined;
  let dir = "";
  before(async () => {
    dir = tempDir(prefix);
    const config = configSchema.parse({ matrix: testMatrixConfig(opts.matrix) });
    running = await startHomeserver(config.matrix, dir, silentLogger);
    for (const userId of opts.users ?? [])
      await running.hs.store.accounts.createUser({
        userId,
        passwordHash: null,
        createdTs: 1,
        admin: false,
        deactivated: false,
        isGuest: false,
        displayname: null,
        avatarUrl: null,
      });
  });
  after(async () => {
    await running?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get running() {
      if (!running) throw new Error("the homeserver has not started (use it inside a test)");
      return running;
    },
  };
}
