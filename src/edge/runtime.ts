/**
 * The edge runtime inside the `edge` service: deployed functions, each served by a workerd process claimed from a
 * pool of pre-started ones (pool.ts, process.ts), requests proxied to them over unix sockets (proxy.ts), cron
 * triggers, metrics per function. Deploy is blue/green: the new version's process must load the module (workerd
 * compiles it) before it takes traffic, so a module that does not parse is refused with workerd's own error and the
 * running version never stops.
 */
import { createHash } from "node:crypto";
import { mkdirSync, rmdirSync, rmSync } from "node:fs";
import { Agent, type IncomingMessage, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CasStore } from "../cas/types.ts";
import { programProcesses } from "../control/proc.ts";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { RuntimePaths } from "../core/paths.ts";
import type { EdgeConfig } from "./config.ts";
import { cronMatches, parseCron } from "./cron.ts";
import { KvStore } from "./kv.ts";
import { WorkerdPool } from "./pool.ts";
import { type Flight, FunctionProcess, type KillReason } from "./process.ts";
import { type FunctionMetrics, limitError, newMetrics, proxyTo } from "./proxy.ts";
import { type FunctionRecord, FunctionRegistry, type FunctionVersion, SecretStore } from "./registry.ts";
import { checkCrons, checkName, checkRoute, percentile, routeMatches } from "./routes.ts";
import { defaultWorkerd, StartError, type WorkerdProcess } from "./workerd.ts";

interface Live {
  version: FunctionVersion;
  proc: FunctionProcess;
  agent: Agent;
}

export interface DeployOptions {
  route?: string | null;
  region?: string | null;
  vars?: Record<string, string>;
  /** Merged into the function's secrets (an empty value removes one). */
  secrets?: Record<string, string>;
  crons?: string[];
}

export class EdgeRuntime {
  readonly #c: EdgeConfig;
  readonly #cas: CasStore;
  readonly #log: Logger;
  readonly #paths: RuntimePaths;
  readonly #dir: string;
  readonly #sockDir: string;
  readonly registry: FunctionRegistry;
  readonly secrets: SecretStore;
  readonly kv: KvStore;
  readonly pool: WorkerdPool;
  readonly #live = new Map<string, Live>();
  /** KV token of a serving process -> its function (workerd injects the token on the KV binding's requests). */
  readonly #kvTokens = new Map<string, string>();
  readonly #metrics = new Map<string, FunctionMetrics>();
  /** Deploys, rollbacks and deletes of one function run one at a time. */
  readonly #locks = new Map<string, Promise<unknown>>();
  #cronTimer: NodeJS.Timeout | undefined;
  readonly #idleTimer: NodeJS.Timeout | undefined;

  constructor(o: { config: EdgeConfig; cas: CasStore; paths: RuntimePaths; log: Logger; kvAddress: string }) {
    this.#c = o.config;
    this.#cas = o.cas;
    this.#log = o.log;
    this.#paths = o.paths;
    this.#dir = o.paths.serviceData("edge");
    mkdirSync(join(this.#dir, "kv"), { recursive: true, mode: 0o700 });
    // Unix socket paths are limited to ~107 bytes: a short directory of our own, per runtime home.
    const tag = createHash("sha256").update(o.paths.home).digest("hex").slice(0, 12);
    const sockDir = join(tmpdir(), `ami-edge-${process.getuid?.() ?? 0}-${tag}`);
    mkdirSync(sockDir, { recursive: true, mode: 0o700 });
    this.#sockDir = sockDir;
    const runDir = join(this.#dir, "run");
    rmSync(runDir, { recursive: true, force: true }); // configs of processes a hard-killed service left
    this.registry = new FunctionRegistry(this.#dir);
    this.secrets = new SecretStore(this.#dir);
    this.kv = new KvStore(join(this.#dir, "kv"), o.cas);
    this.pool = new WorkerdPool({
      size: o.config.poolSize,
      log: o.log,
      spawn: {
        workerd: o.config.workerd ?? defaultWorkerd(),
        runDir,
        sockDir,
        home: o.paths.home,
        compatibilityDate: o.config.compatibilityDate,
        kvAddress: o.kvAddress,
        origin: o.config.origin ? new URL(o.config.origin).host : null,
      },
    });
    if (o.config.idleStopMs > 0) {
      this.#idleTimer = setInterval(() => this.#stopIdle(), Math.min(10_000, o.config.idleStopMs / 2));
      this.#idleTimer.unref();
    }
  }

  /** Start the pool and every deployed function's active version (service start); arm the cron triggers. */
  async startAll(): Promise<void> {
    // A previous edge service that died hard (SIGKILL) left its workerd processes in their own groups: end them.
    for (const p of programProcesses(this.#paths.home)) {
      if (!p.name.startsWith("edge-") || !p.root) continue;
      this.#log.warn("stopping an orphaned edge function process", { pid: p.pid, program: p.name });
      try {
        process.kill(-p.pid, "SIGKILL");
      } catch {}
    }
    this.pool.fill();
    for (const f of this.registry.list()) {
      const v = this.registry.active(f.name);
      if (!v) continue;
      try {
        this.#swap(f.name, await this.#launch(f.name, v, await this.#code(v), this.secrets.get(f.name)));
      } catch (e) {
        // One function that no longer starts (its code unreadable, workerd upgraded) leaves the others serving.
        this.#log.error("edge function did not start", { function: f.name, error: (e as Error).message });
      }
    }
    this.#armCron();
  }

  #serial<T>(name: string, work: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    const next = prev.then(work, work);
    this.#locks.set(
      name,
      next.catch(() => {}),
    );
    return next;
  }

  /** The function whose serving process sent this KV token (the KV endpoint's authentication), if any. */
  kvFunction(token: string | undefined): string | undefined {
    return token ? this.#kvTokens.get(token) : undefined;
  }

  deploy(name: string, code: string, opts: DeployOptions = {}): Promise<FunctionVersion> {
    checkName(name);
    const bytes = Buffer.from(code, "utf8");
    if (bytes.length === 0) throw new AmiError("AMI_INVALID_INPUT", "the module is empty");
    if (bytes.length > this.#c.maxModuleBytes)
      throw new AmiError(
        "AMI_INVALID_INPUT",
        `the module is ${bytes.length} bytes (edge.maxModuleBytes: ${this.#c.maxModuleBytes})`,
      );
    if (opts.route != null) checkRoute(opts.route);
    checkCrons(opts.crons ?? []);
    return this.#serial(name, async () => {
      const prev = this.registry.get(name);
      const version = (prev?.versions.at(-1)?.version ?? 0) + 1;
      const hold = `edge:${name}:v${version}`;
      const secrets = { ...this.secrets.get(name) };
      for (const [k, v] of Object.entries(opts.secrets ?? {})) {
        if (v === "") delete secrets[k];
        else secrets[k] = v;
      }
      const draft: FunctionVersion = {
        version,
        id: "",
        sha256: "",
        size: bytes.length,
        route: opts.route ?? null,
        region: opts.region ?? null,
        vars: opts.vars ?? {},
        crons: opts.crons ?? [],
        deployedAt: new Date().toISOString(),
      };
      // The CAS put (fsync) and the code load overlap: the process is given the bytes in hand.
      const [put, launched] = await Promise.allSettled([
        this.#cas.put(bytes, { hold }),
        this.#launch(name, draft, bytes, secrets),
      ]);
      if (put.status === "rejected" || launched.status === "rejected") {
        if (put.status === "fulfilled") await this.#cas.release(put.value.id, hold).catch(() => {});
        if (launched.status === "fulfilled") await this.#retire(launched.value);
        throw put.status === "rejected" ? put.reason : (launched as PromiseRejectedResult).reason;
      }
      const v: FunctionVersion = { ...draft, id: put.value.id, sha256: put.value.sha256, size: put.value.size };
      const versions = [...(prev?.versions ?? []), v];
      const dropped = versions.splice(0, Math.max(0, versions.length - this.#c.keepVersions));
      this.secrets.update(name, opts.secrets ?? {});
      this.registry.put({ name, versions, active: version });
      for (const d of dropped) await this.#cas.release(d.id, `edge:${name}:v${d.version}`).catch(() => {});
      this.#swap(name, { ...launched.value, version: v });
      this.#log.info("edge function deployed", { function: name, version, sha256: v.sha256 });
      return v;
    });
  }

  /** Back to `version` (default: the one before the active one). */
  rollback(name: string, version?: number): Promise<FunctionVersion> {
    checkName(name);
    return this.#serial(name, async () => {
      const f = this.#need(name);
      const target =
        version !== undefined
          ? f.versions.find((v) => v.version === version)
          : f.versions.filter((v) => v.version < f.active).at(-1);
      if (!target)
        throw new AmiError(
          "M_NOT_FOUND",
          version !== undefined
            ? `function '${name}' has no version ${version} (kept: ${f.versions.map((v) => v.version).join(", ")})`
            : `function '${name}' has no version before ${f.active} to roll back to`,
        );
      const live = await this.#launch(name, target, await this.#code(target), this.secrets.get(name));
      this.registry.put({ ...f, active: target.version });
      this.#swap(name, live);
      this.#log.info("edge function rolled back", { function: name, version: target.version });
      return target;
    });
  }

  delete(name: string): Promise<FunctionRecord> {
    checkName(name);
    return this.#serial(name, async () => {
      const f = this.#need(name);
      const live = this.#live.get(name);
      this.#live.delete(name);
      if (live) await this.#retire(live);
      this.registry.remove(name);
      this.secrets.remove(name);
      for (const v of f.versions) await this.#cas.release(v.id, `edge:${name}:v${v.version}`).catch(() => {});
      await this.kv.drop(name);
      this.#metrics.delete(name);
      return f;
    });
  }

  #need(name: string): FunctionRecord {
    const f = this.registry.get(name);
    if (!f) throw new AmiError("M_NOT_FOUND", `no edge function '${name}' (see: ami-streams edge list)`);
    return f;
  }

  async #code(v: FunctionVersion): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const b of this.#cas.get(v.id)) parts.push(b);
    return Buffer.concat(parts);
  }

  /** Version `v` loaded in a process and serving; a module workerd refuses becomes AMI_EDGE_BAD_MODULE. */
  async #launch(name: string, v: FunctionVersion, code: Buffer, secrets: Record<string, string>): Promise<Live> {
    const metrics = this.#metricsOf(name);
    const proc = new FunctionProcess({
      name,
      version: v.version,
      spec: { code: code.toString("utf8"), vars: { ...v.vars, ...secrets } },
      secrets,
      pool: this.pool,
      logFile: this.#paths.logFile(`edge-${name}`),
      cpuMsPerRequest: this.#c.cpuMsPerRequest,
      memoryBytes: this.#c.memoryMb * 1024 * 1024,
      watchdogMs: this.#c.watchdogIntervalMs,
      promote: true,
      log: this.#log,
      onKill: (r: KillReason) => {
        if (r === "cpu") metrics.cpuKills++;
        else metrics.memoryKills++;
      },
      onAttach: (p: WorkerdProcess) => this.#kvTokens.set(p.kvToken, name),
      onDetach: (p: WorkerdProcess) => this.#kvTokens.delete(p.kvToken),
    });
    try {
      await proc.ready();
    } catch (e) {
      await proc.close();
      if (e instanceof StartError)
        throw new AmiError("AMI_EDGE_BAD_MODULE", `function '${name}' v${v.version} refused by workerd: ${e.message}`);
      throw e;
    }
    return { version: v, proc, agent: new Agent({ keepAlive: true, maxSockets: 256 }) };
  }

  #metricsOf(name: string): FunctionMetrics {
    let m = this.#metrics.get(name);
    if (!m) {
      m = newMetrics();
      this.#metrics.set(name, m);
    }
    return m;
  }

  #swap(name: string, live: Live): void {
    const old = this.#live.get(name);
    this.#live.set(name, live);
    // Requests already inside the old process finish (up to the request timeout) before it goes.
    if (old) setTimeout(() => void this.#retire(old), old.proc.flights.size > 0 ? this.#c.requestTimeoutMs : 0).unref();
  }

  async #retire(l: Live): Promise<void> {
    l.agent.destroy();
    await l.proc.close();
  }

  #stopIdle(): void {
    const now = Date.now();
    for (const [name, l] of this.#live)
      if (l.proc.running && l.proc.flights.size === 0 && now - l.proc.lastUsed > this.#c.idleStopMs) {
        this.#log.info("edge function idle: its process stops until the next request", { function: name });
        l.proc.sleep();
      }
  }

  /** The function a route pattern of a deployed function matches for host+path, if any (longest pattern wins). */
  routeFor(host: string, path: string): string | undefined {
    let best: { name: string; len: number } | undefined;
    for (const [name, l] of this.#live) {
      const r = l.version.route;
      if (!r || !routeMatches(r, host, path)) continue;
      if (!best || r.length > best.len) best = { name, len: r.length };
    }
    return best?.name;
  }

  /**
   * Run function `name` for an incoming request: `path` is what the function sees as its URL's path and query. The
   * seam for edge nodes (src/cdn) is this over HTTP: ANY http://<edge>/fn/<name>/<path> (see ARCHITECTURE.md).
   */
  invoke(name: string, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const live = this.#live.get(name);
    if (!live) throw new AmiError("M_NOT_FOUND", `no edge function '${name}'`);
    const metrics = this.#metricsOf(name);
    return proxyTo({ name, proc: live.proc, agent: live.agent, metrics, config: this.#c, req, res, path });
  }

  /** Run the function's scheduled() handler now (a cron trigger, or `edge trigger`). */
  async trigger(name: string, cron = ""): Promise<{ status: number; text: string }> {
    const live = this.#live.get(name);
    if (!live) throw new AmiError("M_NOT_FOUND", `no edge function '${name}'`);
    const m = this.#metricsOf(name);
    m.cronRuns++;
    let r: { status: number; text: string };
    try {
      // An invocation like a request: its own CPU budget (the watchdog stops a looping scheduled() at it), and the
      // process running it is not closed under it (a promotion's takeover waits for the invocations in flight).
      const wp = await live.proc.ready();
      let flight: Flight | undefined;
      const stopped = new Promise<{ status: number; text: string }>((resolve) => {
        flight = live.proc.enter(wp, (reason) =>
          resolve({ status: 503, text: limitError(name, reason, this.#c).message }),
        );
      });
      try {
        r = await Promise.race([wp.scheduled(cron, Date.now()), stopped]);
      } finally {
        if (flight) live.proc.leave(flight);
      }
    } catch (e) {
      r = { status: 503, text: (e as Error).message };
    }
    if (r.status !== 204) {
      m.errors++;
      this.#log.warn("edge function's scheduled() failed", { function: name, status: r.status, error: r.text });
    }
    return r;
  }

  /** Every minute boundary (UTC): the cron triggers due in that minute. */
  #armCron(): void {
    this.#cronTimer = setTimeout(
      () => {
        void this.runDue(new Date(Math.round(Date.now() / 60_000) * 60_000));
        this.#armCron();
      },
      60_000 - (Date.now() % 60_000),
    );
    this.#cronTimer.unref();
  }

  /** Run the scheduled() handler of each function with a cron matching the UTC minute of `at`; resolves when done. */
  async runDue(at: Date): Promise<string[]> {
    const due: Array<[string, string]> = [];
    for (const [name, l] of this.#live)
      for (const c of l.version.crons ?? []) if (cronMatches(parseCron(c), at)) due.push([name, c]);
    await Promise.all(due.map(([name, c]) => this.trigger(name, c).catch(() => {})));
    return due.map(([name]) => name);
  }

  /** Per-function figures for `edge list`, /metrics and the monitor (secrets by name only). */
  stats() {
    return this.registry.list().map((f) => {
      const l = this.#live.get(f.name);
      const m = this.#metricsOf(f.name);
      const v = this.registry.active(f.name);
      return {
        name: f.name,
        version: f.active,
        route: v?.route ?? null,
        region: v?.region ?? null,
        vars: v?.vars ?? {},
        secrets: Object.keys(this.secrets.get(f.name)).sort(),
        crons: v?.crons ?? [],
        pid: l?.proc.pid ?? null,
        running: !!l?.proc.running,
        dedicated: !!l?.proc.direct,
        invocations: m.invocations,
        errors: m.errors,
        cronRuns: m.cronRuns,
        cpuKills: m.cpuKills,
        memoryKills: m.memoryKills,
        restarts: l?.proc.restarts ?? 0,
        cpuMs: l?.proc.cpuMs() ?? 0,
        rssBytes: l?.proc.rssBytes ?? 0,
        p50Ms: round(percentile(m.latencies, 50)),
        p99Ms: round(percentile(m.latencies, 99)),
      };
    });
  }

  async close(): Promise<void> {
    clearTimeout(this.#cronTimer);
    clearInterval(this.#idleTimer);
    const all = [...this.#live.values()];
    this.#live.clear();
    await Promise.all([...all.map((l) => this.#retire(l)), this.pool.close()]);
    try {
      rmdirSync(this.#sockDir); // empty now; a socket directory per runtime home
    } catch {}
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
