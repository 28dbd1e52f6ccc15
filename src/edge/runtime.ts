/**
 * The edge runtime inside the `edge` service: deployed functions, one workerd process each (process.ts), requests
 * proxied to them over unix sockets, metrics per function. Deploy is blue/green: the new version's process must
 * start (workerd compiles the module) before it takes traffic, so a module that does not parse is refused with
 * workerd's own error and the running version never stops.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { Agent, type IncomingMessage, request, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { CasStore } from "../cas/types.ts";
import { programProcesses } from "../control/proc.ts";
import { AmiError } from "../core/errors.ts";
import { sendError } from "../core/http/reply.ts";
import type { Logger } from "../core/logger.ts";
import type { RuntimePaths } from "../core/paths.ts";
import { DENY_MODULE, ENTRY_MODULE, workerdConfig } from "./capnp.ts";
import type { EdgeConfig } from "./config.ts";
import { KvStore } from "./kv.ts";
import { FunctionProcess, type KillReason, StartError } from "./process.ts";
import { FUNCTION_NAME, type FunctionRecord, FunctionRegistry, type FunctionVersion } from "./registry.ts";

/** The workerd binary of the npm package. */
export function defaultWorkerd(): string {
  return join(dirname(createRequire(import.meta.url).resolve("workerd/package.json")), "bin", "workerd");
}

export interface FunctionMetrics {
  invocations: number;
  errors: number;
  cpuKills: number;
  memoryKills: number;
  /** Latest request durations (ms), a ring for p50/p99. */
  latencies: number[];
  latencyAt: number;
}

const RING = 1024;
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

interface Live {
  version: FunctionVersion;
  proc: FunctionProcess;
  agent: Agent;
  metrics: FunctionMetrics;
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

export class EdgeRuntime {
  readonly #c: EdgeConfig;
  readonly #cas: CasStore;
  readonly #log: Logger;
  readonly #paths: RuntimePaths;
  readonly #dir: string;
  readonly #sockDir: string;
  readonly registry: FunctionRegistry;
  readonly kv: KvStore;
  readonly #live = new Map<string, Live>();
  /** Per function: its KV token (workerd injects it on KV requests). */
  readonly #tokens = new Map<string, string>();
  readonly #metrics = new Map<string, FunctionMetrics>();
  /** Deploys, rollbacks and deletes of one function run one at a time. */
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #kvAddress: string;

  constructor(o: { config: EdgeConfig; cas: CasStore; paths: RuntimePaths; log: Logger; kvAddress: string }) {
    this.#c = o.config;
    this.#cas = o.cas;
    this.#log = o.log;
    this.#paths = o.paths;
    this.#kvAddress = o.kvAddress;
    this.#dir = o.paths.serviceData("edge");
    mkdirSync(join(this.#dir, "kv"), { recursive: true, mode: 0o700 });
    // Unix socket paths are limited to ~107 bytes: a short directory of our own, per runtime home.
    const tag = createHash("sha256").update(o.paths.home).digest("hex").slice(0, 12);
    this.#sockDir = join(tmpdir(), `ami-edge-${process.getuid?.() ?? 0}-${tag}`);
    mkdirSync(this.#sockDir, { recursive: true, mode: 0o700 });
    this.registry = new FunctionRegistry(this.#dir);
    this.kv = new KvStore(join(this.#dir, "kv"), o.cas);
  }

  /** Start every deployed function's active version (service start). */
  async startAll(): Promise<void> {
    // A previous edge service that died hard (SIGKILL) left its workerd processes in their own groups: end them.
    for (const p of programProcesses(this.#paths.home)) {
      if (!p.name.startsWith("edge-") || !p.root) continue;
      this.#log.warn("stopping an orphaned edge function process", { pid: p.pid, program: p.name });
      try {
        process.kill(-p.pid, "SIGKILL");
      } catch {}
    }
    for (const f of this.registry.list()) {
      const v = this.registry.active(f.name);
      if (!v) continue;
      try {
        const l = await this.#launch(f.name, v.version, await this.#code(v));
        this.#swap(f.name, { ...l, version: v });
      } catch (e) {
        // One function that no longer starts (its code unreadable, workerd upgraded) leaves the others serving.
        this.#log.error("edge function did not start", { function: f.name, error: (e as Error).message });
      }
    }
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

  /** The name's KV token check (the KV endpoint's authentication). */
  kvAllowed(name: string, token: string | undefined): boolean {
    const t = this.#tokens.get(name);
    return !!t && !!token && t.length === token.length && timingSafeEqual(Buffer.from(t), Buffer.from(token));
  }

  deploy(
    name: string,
    code: string,
    opts: { route?: string | null; region?: string | null } = {},
  ): Promise<FunctionVersion> {
    checkName(name);
    const bytes = Buffer.from(code, "utf8");
    if (bytes.length === 0) throw new AmiError("AMI_INVALID_INPUT", "the module is empty");
    if (bytes.length > this.#c.maxModuleBytes)
      throw new AmiError(
        "AMI_INVALID_INPUT",
        `the module is ${bytes.length} bytes (edge.maxModuleBytes: ${this.#c.maxModuleBytes})`,
      );
    if (opts.route != null) checkRoute(opts.route);
    return this.#serial(name, async () => {
      const prev = this.registry.get(name);
      const version = (prev?.versions.at(-1)?.version ?? 0) + 1;
      const hold = `edge:${name}:v${version}`;
      // The CAS put (fsync) and workerd's start overlap: the process is started from the bytes in hand.
      const [put, launched] = await Promise.allSettled([
        this.#cas.put(bytes, { hold }),
        this.#launch(name, version, bytes),
      ]);
      if (put.status === "rejected" || launched.status === "rejected") {
        if (put.status === "fulfilled") await this.#cas.release(put.value.id, hold).catch(() => {});
        if (launched.status === "fulfilled") await this.#retire(launched.value);
        throw put.status === "rejected" ? put.reason : (launched as PromiseRejectedResult).reason;
      }
      const v: FunctionVersion = {
        version,
        id: put.value.id,
        sha256: put.value.sha256,
        size: put.value.size,
        route: opts.route ?? null,
        region: opts.region ?? null,
        deployedAt: new Date().toISOString(),
      };
      const live = { ...launched.value, version: v };
      const versions = [...(prev?.versions ?? []), v];
      const dropped = versions.splice(0, Math.max(0, versions.length - this.#c.keepVersions));
      this.registry.put({ name, versions, active: version });
      for (const d of dropped) await this.#cas.release(d.id, `edge:${name}:v${d.version}`).catch(() => {});
      this.#swap(name, live);
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
      const live = { ...(await this.#launch(name, target.version, await this.#code(target))), version: target };
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
      for (const v of f.versions) await this.#cas.release(v.id, `edge:${name}:v${v.version}`).catch(() => {});
      await this.kv.drop(name);
      this.#metrics.delete(name);
      this.#tokens.delete(name);
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

  /** A process for version `v`, started and listening; a module workerd refuses becomes AMI_EDGE_BAD_MODULE. */
  async #launch(name: string, version: number, code: Buffer): Promise<Omit<Live, "version">> {
    const dir = join(this.#dir, "run", name, `v${version}-${randomBytes(3).toString("hex")}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const socket = join(this.#sockDir, `${name}-${version}-${randomBytes(3).toString("hex")}.sock`);
    let token = this.#tokens.get(name);
    if (!token) {
      token = randomBytes(18).toString("base64url");
      this.#tokens.set(name, token);
    }
    writeFileSync(join(dir, "worker.js"), code, { mode: 0o600 });
    writeFileSync(join(dir, "ami-entry.js"), ENTRY_MODULE, { mode: 0o600 });
    writeFileSync(join(dir, "deny.js"), DENY_MODULE, { mode: 0o600 });
    const origin = this.#c.origin ? new URL(this.#c.origin).host : null;
    const configFile = join(dir, "config.capnp");
    const probeToken = randomBytes(12).toString("base64url");
    writeFileSync(
      configFile,
      workerdConfig({
        socket,
        moduleFile: "worker.js",
        entryFile: "ami-entry.js",
        denyFile: "deny.js",
        probeToken,
        compatibilityDate: this.#c.compatibilityDate,
        kv: { address: this.#kvAddress, fn: name, token },
        origin,
      }),
      { mode: 0o600 },
    );
    const metrics = this.#metricsOf(name);
    const proc = new FunctionProcess({
      name,
      workerd: this.#c.workerd ?? defaultWorkerd(),
      configFile,
      socket,
      cwd: dir,
      probeToken,
      logFile: this.#paths.logFile(`edge-${name}`),
      home: this.#paths.home,
      cpuMsPerRequest: this.#c.cpuMsPerRequest,
      memoryBytes: this.#c.memoryMb * 1024 * 1024,
      watchdogMs: this.#c.watchdogIntervalMs,
      log: this.#log,
      onKill: (r: KillReason) => {
        if (r === "cpu") metrics.cpuKills++;
        else metrics.memoryKills++;
      },
    });
    try {
      await proc.ready();
    } catch (e) {
      await proc.close();
      rmSync(dir, { recursive: true, force: true });
      if (e instanceof StartError)
        throw new AmiError("AMI_EDGE_BAD_MODULE", `function '${name}' v${version} refused by workerd: ${e.message}`);
      throw e;
    }
    const agent = new Agent({ keepAlive: true, maxSockets: 256 });
    return { proc, agent, metrics };
  }

  #metricsOf(name: string): FunctionMetrics {
    let m = this.#metrics.get(name);
    if (!m) {
      m = { invocations: 0, errors: 0, cpuKills: 0, memoryKills: 0, latencies: [], latencyAt: 0 };
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

  async #retire(l: Omit<Live, "version">): Promise<void> {
    l.agent.destroy();
    await l.proc.close();
    rmSync(dirname(l.proc.opts.configFile), { recursive: true, force: true });
    rmSync(l.proc.opts.socket, { force: true });
  }

  /** The function a route pattern of a deployed function matches for host+path, if any (longest pattern wins). */
  routeFor(host: string, path: string): string | undefined {
    let best: { name: string; len: number } | undefined;
    for (const name of this.#live.keys()) {
      const r = this.#live.get(name)?.version.route;
      if (!r || !routeMatches(r, host, path)) continue;
      if (!best || r.length > best.len) best = { name, len: r.length };
    }
    return best?.name;
  }

  /**
   * Run function `name` for an incoming request: `path` is what the function sees as its URL's path and query. The
   * seam for edge nodes (src/cdn) is this over HTTP: GET|POST http://<edge>/fn/<name>/<path> (see ARCHITECTURE.md).
   */
  async invoke(name: string, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const live = this.#live.get(name);
    if (!live) throw new AmiError("M_NOT_FOUND", `no edge function '${name}'`);
    const m = live.metrics;
    const t0 = performance.now();
    m.invocations++;
    const done = (ok: boolean) => {
      if (!ok) m.errors++;
      m.latencies[m.latencyAt] = performance.now() - t0;
      m.latencyAt = (m.latencyAt + 1) % RING;
    };
    try {
      await live.proc.ready();
    } catch (e) {
      done(false);
      throw new AmiError("AMI_UNAVAILABLE", `function '${name}' cannot start: ${(e as Error).message}`);
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined && !HOP.has(k) && k !== "x-ami-edge-probe") headers[k] = v;
    await new Promise<void>((resolve) => {
      let settled = false;
      const flight = {
        cpuAtStart: live.proc.cpuTicksNow(),
        abort: (reason: KillReason) => fail(limitError(name, reason, this.#c)),
      };
      const fail = (e: AmiError) => {
        if (settled) return;
        settled = true;
        live.proc.flights.delete(flight);
        clearTimeout(timer);
        out.destroy();
        done(false);
        if (res.headersSent) res.destroy();
        else sendError(res, e);
        resolve();
      };
      const timer = setTimeout(
        () =>
          fail(new AmiError("AMI_TIMEOUT", `function '${name}' did not answer within ${this.#c.requestTimeoutMs} ms`)),
        this.#c.requestTimeoutMs,
      );
      live.proc.flights.add(flight);
      const out = request(
        { socketPath: live.proc.opts.socket, path, method: req.method, headers, agent: live.agent },
        (up) => {
          const h: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP.has(k)) h[k] = v;
          res.writeHead(up.statusCode ?? 502, h);
          up.pipe(res);
          up.once("end", () => {
            if (settled) return;
            settled = true;
            live.proc.flights.delete(flight);
            clearTimeout(timer);
            done((up.statusCode ?? 502) < 500);
            resolve();
          });
          up.once("error", () => fail(new AmiError("AMI_UNAVAILABLE", `function '${name}' failed mid-response`)));
        },
      );
      out.once("error", (e) => {
        // The watchdog's kill already answered with the limit's error; anything else is the process failing.
        fail(new AmiError("AMI_UNAVAILABLE", `function '${name}' failed: ${e.message}`));
      });
      res.once("close", () => {
        if (!settled) fail(new AmiError("AMI_UNAVAILABLE", "client went away"));
      });
      req.pipe(out);
    });
  }

  /** Per-function figures for `edge list`, /metrics and the monitor. */
  stats(): Array<{
    name: string;
    version: number;
    route: string | null;
    region: string | null;
    pid: number | null;
    invocations: number;
    errors: number;
    cpuKills: number;
    memoryKills: number;
    restarts: number;
    cpuMs: number;
    rssBytes: number;
    p50Ms: number;
    p99Ms: number;
  }> {
    return this.registry.list().map((f) => {
      const l = this.#live.get(f.name);
      const m = this.#metricsOf(f.name);
      const v = this.registry.active(f.name);
      return {
        name: f.name,
        version: f.active,
        route: v?.route ?? null,
        region: v?.region ?? null,
        pid: l?.proc.pid ?? null,
        invocations: m.invocations,
        errors: m.errors,
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
    const all = [...this.#live.values()];
    this.#live.clear();
    await Promise.all(all.map((l) => this.#retire(l)));
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;

function limitError(name: string, reason: KillReason, c: EdgeConfig): AmiError {
  return reason === "cpu"
    ? new AmiError(
        "AMI_EDGE_CPU_LIMIT",
        `function '${name}' exceeded its CPU limit (${c.cpuMsPerRequest} ms per request); its process was restarted`,
      )
    : new AmiError(
        "AMI_EDGE_MEMORY_LIMIT",
        `function '${name}' exceeded its memory limit (${c.memoryMb} MB); its process was restarted`,
      );
}

export function checkName(name: string): void {
  if (!FUNCTION_NAME.test(name))
    throw new AmiError(
      "AMI_INVALID_INPUT",
      `function name '${name}' must be lowercase letters, digits and '-', starting with a letter (at most 63)`,
    );
}

/** Route patterns: `[host]/path`, a trailing `*` matches any rest (`/api/*`, `example.com/img/*`). */
export function checkRoute(route: string): void {
  if (!/^([A-Za-z0-9.-]+(:\d+)?)?\/[^\s*]*\*?$/.test(route))
    throw new AmiError("AMI_INVALID_INPUT", `route '${route}' must look like /path, /path/* or host/path/*`);
}

export function routeMatches(route: string, host: string, path: string): boolean {
  const slash = route.indexOf("/");
  const rhost = route.slice(0, slash);
  const rpath = route.slice(slash);
  if (rhost && rhost.toLowerCase() !== host.toLowerCase() && rhost.toLowerCase() !== host.split(":")[0].toLowerCase())
    return false;
  const p = path.split("?")[0];
  return rpath.endsWith("*") ? p.startsWith(rpath.slice(0, -1)) : p === rpath;
}
