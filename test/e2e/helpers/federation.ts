/**
 * Federated homeservers for e2e tests and benches: in-process servers named hs1.test, hs2.test, ... on loopback
 * ports, finding each other through `federation.hostMap`. Each can be stopped and started again on the same port
 * and data dir (an outage), and the helpers talk to them as real clients over HTTP.
 */
import { rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { type Config, configSchema } from "../../../src/config.ts";
import { silentLogger } from "../../../src/core/logger.ts";
import { type RunningHomeserver, startHomeserver } from "../../../src/matrix/homeserver.ts";
import { freePort } from "../../../src/test/cli.ts";
import { tempDir, testMatrixConfig } from "./homeserver.ts";

export class FedServer {
  readonly name: string;
  readonly port: number;
  readonly dataDir: string;
  readonly matrix: Record<string, any>;
  running: RunningHomeserver | null = null;
  /** The whole config it runs with (set by start()): for ops run against it. */
  config: Config | null = null;

  constructor(name: string, port: number, matrix: Record<string, any>, dataDir = tempDir()) {
    this.name = name;
    this.port = port;
    this.matrix = matrix;
    this.dataDir = dataDir;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get hs(): RunningHomeserver["hs"] {
    if (!this.running) throw new Error(`${this.name} is stopped`);
    return this.running.hs;
  }

  async start(): Promise<void> {
    const config = configSchema.parse({
      matrix: testMatrixConfig({ database: `sqlite:${join(this.dataDir, "hs.db")}`, ...this.matrix }),
    });
    this.config = config;
    this.running = await startHomeserver(config.matrix, this.dataDir, silentLogger);
  }

  async stop(): Promise<void> {
    const r = this.running;
    this.running = null;
    await r?.close();
  }

  async dispose(): Promise<void> {
    await this.stop().catch(() => {});
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * Start `names` (each `<name>`, served at its own port) with federation on; `extra` maps names that are never
 * started (dead servers) to an address, e.g. a port nothing listens on or a socket that never answers.
 */
export async function startFederation(
  names: string[],
  opts: {
    federation?: Record<string, any>;
    extra?: Record<string, string>;
    start?: string[];
    /** A server's data dir (default: a new temp dir), e.g. a runtime home's matrix data dir for ops. */
    dataDirs?: Record<string, string>;
    /** More matrix config for one server (its `federation` merged into the common one). */
    matrix?: Record<string, Record<string, any>>;
    /** Per server, other servers reached at another address (e.g. through a LinkProxy that can be cut). */
    route?: Record<string, Record<string, string>>;
  } = {},
): Promise<Record<string, FedServer>> {
  const ports = new Map<string, number>();
  for (const n of names) ports.set(n, await freePort());
  const hostMap: Record<string, string> = { ...opts.extra };
  for (const [n, p] of ports) hostMap[n] = `http://127.0.0.1:${p}`;
  const out: Record<string, FedServer> = {};
  try {
    for (const n of names) {
      const { federation, ...rest } = opts.matrix?.[n] ?? {};
      out[n] = new FedServer(
        n,
        ports.get(n)!,
        {
          serverName: n,
          port: ports.get(n),
          ...rest,
          federation: {
            enabled: true,
            hostMap: { ...hostMap, ...opts.route?.[n] },
            requestTimeoutMs: 5000,
            ...opts.federation,
            ...federation,
          },
        },
        opts.dataDirs?.[n],
      );
      if (!opts.start || opts.start.includes(n)) await out[n].start();
    }
  } catch (e) {
    for (const f of Object.values(out)) await f.dispose();
    throw e;
  }
  return out;
}

/**
 * A TCP proxy on loopback for one direction of a link between two servers (what one server's hostMap names the
 * other at): `cut()` resets every open connection and every new one (a partition, as a peer sees a dead route);
 * `heal()` forwards again. The target port is set once the server behind it has one.
 */
export class LinkProxy {
  readonly #server: Server;
  readonly #open = new Set<Socket>();
  target = 0;
  cutOff = false;
  /** Connections reset while cut. */
  refused = 0;
  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<LinkProxy> {
    const p: LinkProxy = new LinkProxy(createServer((sock) => p.#accept(sock)));
    await new Promise<void>((r) => p.#server.listen(0, "127.0.0.1", r));
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as { port: number }).port}`;
  }

  #accept(sock: Socket): void {
    sock.on("error", () => {});
    if (this.cutOff || this.target === 0) {
      this.refused++;
      sock.resetAndDestroy();
      return;
    }
    const up = createConnection({ host: "127.0.0.1", port: this.target });
    up.on("error", () => sock.destroy());
    sock.on("close", () => up.destroy());
    up.on("close", () => sock.destroy());
    this.#open.add(sock).add(up);
    sock.on("close", () => this.#open.delete(sock));
    up.on("close", () => this.#open.delete(up));
    sock.pipe(up).pipe(sock);
  }

  cut(): void {
    this.cutOff = true;
    for (const s of this.#open) s.resetAndDestroy();
    this.#open.clear();
  }

  heal(): void {
    this.cutOff = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

/** `n` federating servers `hs1.test`..`hsN.test` in order, plus `dead.test` on a port nobody serves. */
export interface Federated {
  servers: FedServer[];
  /** Stop every server (one already stopped by the test is fine). */
  dispose(): Promise<void>;
}

/** startFederation for `n` servers; `over[i]` adds to server i's matrix config; `extra` maps more names. */
export async function startFederated(
  n: number,
  over: Record<string, any>[] = [],
  extra: Record<string, string> = {},
): Promise<Federated> {
  const names = Array.from({ length: n }, (_, i) => `hs${i + 1}.test`);
  const dead = `http://127.0.0.1:${await freePort()}`;
  const s = await startFederation(names, {
    extra: { "dead.test": dead, ...extra },
    matrix: Object.fromEntries(names.map((name, i) => [name, over[i] ?? {}])),
  });
  const servers = names.map((name) => s[name]);
  return {
    servers,
    async dispose() {
      for (const f of servers) await f.dispose();
    },
  };
}

export interface TestUser {
  userId: string;
  deviceId: string;
  token: string;
}

export async function register(base: string, username: string): Promise<TestUser> {
  const r = await fetch(`${base}/_matrix/client/v3/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password: "correct horse battery", auth: { type: "m.login.dummy" } }),
  });
  const b = await r.json();
  if (r.status !== 200) throw new Error(`register ${username}: ${r.status} ${JSON.stringify(b)}`);
  return { userId: b.user_id, deviceId: b.device_id, token: b.access_token };
}

export async function sendToDevice(
  base: string,
  u: TestUser,
  txnId: string,
  messages: Record<string, Record<string, unknown>>,
  type = "m.test",
): Promise<void> {
  const r = await fetch(`${base}/_matrix/client/v3/sendToDevice/${type}/${txnId}`, {
    method: "PUT",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${u.token}` },
    body: JSON.stringify({ messages }),
  });
  if (r.status !== 200) throw new Error(`sendToDevice: ${r.status} ${await r.text()}`);
}

/** A /sync long-poll client of one user: `next()` answers the to-device events of the next non-empty sync. */
export class ToDeviceInbox {
  readonly base: string;
  readonly user: TestUser;
  since: string | null = null;
  constructor(base: string, user: TestUser) {
    this.base = base;
    this.user = user;
  }

  /** One sync (long-polling up to timeoutMs); its to-device events. */
  async poll(timeoutMs = 30_000): Promise<any[]> {
    const q = new URLSearchParams({ timeout: String(timeoutMs) });
    if (this.since) q.set("since", this.since);
    const r = await fetch(`${this.base}/_matrix/client/v3/sync?${q}`, {
      headers: { Authorization: `Bearer ${this.user.token}` },
    });
    const b = await r.json();
    if (r.status !== 200) throw new Error(`sync: ${r.status} ${JSON.stringify(b)}`);
    this.since = b.next_batch;
    return b.to_device?.events ?? [];
  }

  /** Sync until `n` to-device events arrived (each sync long-polls), or `deadlineMs` passes. */
  async take(n: number, deadlineMs = 60_000): Promise<any[]> {
    const out: any[] = [];
    const end = Date.now() + deadlineMs;
    while (out.length < n && Date.now() < end) out.push(...(await this.poll(Math.min(30_000, end - Date.now()))));
    return out;
  }
}
