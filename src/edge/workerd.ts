/**
 * One workerd process running the loader (modules.ts): spawned in its own process group with a config that names no
 * function, ready once its unix socket answers the control ping. It serves one function once loaded (`load`), and
 * is killed, never reused, when that function is done with it. Output is kept as a tail (a failed load's reason)
 * and copied to whichever function's log owns the process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { HOME_ENV, PROGRAM_ENV, sampleProc } from "../control/proc.ts";
import { directConfig, workerdConfig } from "./capnp.ts";
import { DENY_MODULE, ENTRY_MODULE, LOADER_MODULE } from "./modules.ts";

export interface SpawnOptions {
  workerd: string;
  /** Directory for the process's config (removed with it) and for its socket (short: unix paths are ~107 bytes). */
  runDir: string;
  sockDir: string;
  home: string;
  compatibilityDate: string;
  kvAddress: string;
  origin: string | null;
  /** A process dedicated to this function (its modules in the config, no loader); absent: a pooled loader process. */
  direct?: LoadSpec;
}

/** What a function brings to a process: its code, vars (secrets included) and a probe token. */
export interface LoadSpec {
  code: string;
  vars: Record<string, string>;
}

export class StartError extends Error {}

/**
 * What a start or a load may use before the function serves (and the watchdog takes over): a module's top-level code
 * runs then, and a loop or a memory bomb there must not hang a deploy or eat the machine.
 */
export interface StartLimits {
  cpuMs: number;
  memoryBytes: number;
}

/** CPU time a start or load may use: compiling a 1 MB module and workerd's own start fit well within it. */
export const START_CPU_MS = 1000;
const START_WALL_MS = 15_000;

/** The workerd binary of the npm package. */
export function defaultWorkerd(): string {
  return join(dirname(createRequire(import.meta.url).resolve("workerd/package.json")), "bin", "workerd");
}

/** Where a process's output lines go (a LogSink, or one that masks first). */
export interface LineSink {
  writeLines(lines: string[]): void;
}

export class WorkerdProcess {
  readonly socket: string;
  readonly dir: string;
  /** Injected by workerd on the KV binding's requests: the edge service maps it to the function loaded here. */
  readonly kvToken = randomBytes(18).toString("base64url");
  readonly #ctl = randomBytes(18).toString("base64url");
  readonly #child: ChildProcess;
  #tail = "";
  #partial = "";
  exited: string | undefined;
  readonly gone: Promise<void>;
  /** Where output lines go once a function owns the process. */
  sink: LineSink | undefined;
  /** True for a process started with its function's modules (no load step, no loader hop per request). */
  readonly direct: boolean;
  /** CPU ticks at the watchdog's last sample (process.ts). */
  lastTicks = 0;
  /** The watchdog's CPU account (process.ts): CPU ticks when the process began serving (its start-up ends at its
   * first invocation), the CPU ms its invocations' budgets have left, the housekeeping allowance and when it was
   * last refilled (performance.now()). */
  servingTicks = 0;
  invoked = false;
  cpuLeftMs = 0;
  allowanceMs = 0;
  allowanceAt = 0;
  /** When its last invocation ended (Date.now()): a replaced process stays a little for their waitUntil work. */
  lastLeftAt = 0;

  constructor(o: SpawnOptions) {
    const id = randomBytes(4).toString("hex");
    this.dir = join(o.runDir, id);
    this.socket = join(o.sockDir, `${id}.sock`);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const write = (f: string, text: string) => writeFileSync(join(this.dir, f), text, { mode: 0o600 });
    write("deny.js", DENY_MODULE);
    const common = {
      socket: this.socket,
      denyFile: "deny.js",
      compatibilityDate: o.compatibilityDate,
      kv: { address: o.kvAddress, token: this.kvToken },
      origin: o.origin,
    };
    this.direct = !!o.direct;
    if (o.direct) {
      write("ami-entry.js", ENTRY_MODULE);
      write("worker.js", o.direct.code);
      const plan = { ...common, entryFile: "ami-entry.js", moduleFile: "worker.js", probeToken: this.#ctl };
      write("config.capnp", directConfig({ ...plan, vars: o.direct.vars }));
    } else {
      write("loader.js", LOADER_MODULE);
      write("config.capnp", workerdConfig({ ...common, loaderFile: "loader.js", ctlToken: this.#ctl }));
    }
    // --experimental: workerd marks the worker-loader binding experimental (see ARCHITECTURE.md, Edge functions).
    const args = o.direct ? ["serve", "config.capnp"] : ["serve", "--experimental", "config.capnp"];
    this.#child = spawn(o.workerd, args, {
      cwd: this.dir,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", [HOME_ENV]: o.home, [PROGRAM_ENV]: "edge-pool" },
    });
    for (const s of [this.#child.stdout, this.#child.stderr]) {
      s?.setEncoding("utf8");
      s?.on("data", (c: string) => this.#output(c));
    }
    this.gone = new Promise((resolve) => {
      this.#child.once("exit", (code, signal) => {
        this.exited = signal ? `signal ${signal}` : `exit code ${code}`;
        this.kill(); // whatever it left in its group
        resolve();
      });
      this.#child.once("error", (e) => {
        this.exited = e.message;
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get alive(): boolean {
    return this.exited === undefined;
  }

  #output(c: string): void {
    this.#tail = (this.#tail + c).slice(-4000);
    if (!this.sink) return;
    const text = this.#partial + c;
    const end = text.lastIndexOf("\n");
    this.#partial = end < 0 ? text.slice(-65536) : text.slice(end + 1);
    if (end >= 0) this.sink.writeLines(text.slice(0, end).split("\n"));
  }

  /** Resolves once the loader answers; rejects with workerd's own words if it exits first. */
  ready(limits?: StartLimits): Promise<void> {
    return this.#guard(this.#ready(), limits);
  }

  async #ready(timeoutMs = START_WALL_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited !== undefined) {
        await new Promise((r) => setTimeout(r, 20)); // the last output lines
        throw new StartError(`workerd exited (${this.exited}) before serving: ${this.#tail.trim() || "no output"}`);
      }
      // A direct process has no loader: our entry module answers its probe once the module compiled.
      const r = await (this.direct
        ? this.#call("GET", "/", "", { "x-ami-edge-probe": this.#ctl })
        : this.#call("GET", "/_ami/ping")
      ).catch(() => ({ status: 0 }));
      if (r.status === 204) return;
      if (Date.now() > deadline) {
        this.kill();
        throw new StartError(`workerd did not listen within ${timeoutMs} ms: ${this.#tail.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /** Give the process its function; a module workerd refuses rejects with workerd's message (StartError). */
  async load(spec: LoadSpec, limits?: StartLimits): Promise<void> {
    const body = JSON.stringify({ ...spec, probe: randomBytes(12).toString("base64url") });
    const r = await this.#guard(
      this.#call("POST", "/_ami/load", body).catch((e: Error) => ({ status: 0, text: e.message })),
      limits,
    );
    if (r.status !== 204)
      throw new StartError(r.status === 0 ? `workerd failed: ${r.text} ${this.#tail.trim()}` : r.text.trim());
  }

  /** `work`, unless the process passes a start limit (or the wall deadline) first: then it is killed (StartError). */
  async #guard<T>(work: Promise<T>, limits: StartLimits | undefined): Promise<T> {
    if (!limits) return work;
    const t0 = this.cpuTicks();
    const deadline = Date.now() + START_WALL_MS;
    let timer: NodeJS.Timeout | undefined;
    const over = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        const s = this.pid ? sampleProc(this.pid) : undefined;
        const why = !s
          ? undefined
          : s.rssBytes > limits.memoryBytes
            ? `memory (${Math.round(s.rssBytes / 1048576)} MB, limit ${Math.round(limits.memoryBytes / 1048576)} MB)`
            : (s.cpuTicks - t0) * 10 > limits.cpuMs
              ? `CPU time (limit ${limits.cpuMs} ms)`
              : Date.now() > deadline
                ? `wall time (${START_WALL_MS} ms)`
                : undefined;
        if (!why) return;
        this.kill();
        reject(new StartError(`the module's top-level code went over the start limit on ${why}`));
      }, 20);
    });
    try {
      return await Promise.race([work, over]);
    } finally {
      clearInterval(timer);
    }
  }

  /** Run the function's scheduled() handler; resolves to its status (204 ran, 501 none, 500 threw) and text. */
  scheduled(cron: string, at: number): Promise<{ status: number; text: string }> {
    const h = { "x-ami-edge-cron": cron, "x-ami-edge-time": String(at) };
    return this.direct
      ? this.#call("POST", "/", "", { ...h, "x-ami-edge-scheduled": this.#ctl })
      : this.#call("POST", "/_ami/scheduled", "", h);
  }

  /** The process's CPU ticks now (0 when it is gone). */
  cpuTicks(): number {
    return (this.pid && sampleProc(this.pid)?.cpuTicks) || 0;
  }

  #call(
    method: string,
    path: string,
    body = "",
    extra: Record<string, string> = {},
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const r = request(
        {
          socketPath: this.socket,
          path,
          method,
          headers: { "x-ami-edge-ctl": this.#ctl, "content-type": "application/json", ...extra },
          agent: false,
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on("data", (b: Buffer) => parts.push(b));
          res.once("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
          res.once("error", reject);
        },
      );
      r.once("error", reject);
      r.end(body);
    });
  }

  kill(): void {
    try {
      process.kill(-(this.#child.pid ?? 0), "SIGKILL");
    } catch {
      this.#child.kill("SIGKILL");
    }
  }

  /** Kill it, wait for it, remove its files. */
  async close(): Promise<void> {
    if (this.alive) {
      this.kill();
      await this.gone;
    }
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.socket, { force: true });
  }
}
