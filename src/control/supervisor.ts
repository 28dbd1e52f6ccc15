/**
 * The supervisor daemon: owns one ServiceRunner per service and serves the control API until shut down. It must
 * outlive its services' troubles, a full disk included: its run files are written when the disk lets it (retried
 * until then), and an unexpected exception is logged, not fatal, because a dead supervisor orphans every service.
 */
import { randomBytes } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Alerting } from "../alerts/service.ts";
import { type Config, loadConfig } from "../config.ts";
import { AmiError } from "../core/errors.ts";
import { baseUrl } from "../core/http/address.ts";
import { guardStderr, type Logger } from "../core/logger.ts";
import type { OpRegistry } from "../core/ops.ts";
import { type RuntimePaths, tightenModes } from "../core/paths.ts";
import { startControlApi } from "./api.ts";
import { controlInfoFile, controlTokenFile, readControlToken, SUPERVISOR } from "./client.ts";
import { makeContext } from "./context.ts";
import { removeFile } from "./proc.ts";
import { ServiceRunner } from "./runner.ts";
import type { ControlInfo, SupervisorStatus } from "./state.ts";
import { type Unit, units } from "./units.ts";

export class Supervisor {
  readonly runners = new Map<string, ServiceRunner>();
  readonly #startedAt = Date.now();
  #server: Server | undefined;
  #url: string | null = null;
  #closing: Promise<void> | undefined;
  /** Built-in alerts (rules, book, delivery); created by run(). */
  alerting: Alerting | undefined;
  /** Run files the disk refused, by path: retried every second until written. */
  readonly #pending = new Map<string, string>();
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #paths: RuntimePaths;
  readonly #log: Logger;
  readonly #opts: { config: Config; configPath: string | undefined; paths: RuntimePaths; log: Logger };

  constructor(
    opts: { config: Config; configPath: string | undefined; paths: RuntimePaths; log: Logger },
    defs: Unit[] = units(opts.config),
  ) {
    this.#opts = opts;
    this.#paths = opts.paths;
    this.#log = opts.log;
    for (const d of defs) this.#add(d);
  }

  #add(unit: Unit): ServiceRunner {
    const o = this.#opts;
    const r = new ServiceRunner(unit, o.config, o.configPath, o.paths, o.log);
    this.runners.set(unit.name, r);
    return r;
  }

  runner(name: string): ServiceRunner {
    const r = this.runners.get(name) ?? this.#added(name);
    if (!r)
      throw new AmiError("M_NOT_FOUND", `unknown service '${name}' (known: ${[...this.runners.keys()].join(", ")})`);
    return r;
  }

  /** A program added to the config file after the supervisor started: `<name> start` and `up` find it there. */
  #added(name: string): ServiceRunner | undefined {
    try {
      const unit = units(loadConfig(this.#opts.configPath).config).find((u) => u.name === name);
      return unit ? this.#add(unit) : undefined;
    } catch {
      return undefined;
    }
  }

  status(): SupervisorStatus {
    return {
      supervisor: {
        running: true,
        pid: process.pid,
        url: this.#url,
        uptimeS: Math.round((Date.now() - this.#startedAt) / 100) / 10,
      },
      services: [...this.runners.values()].map((r) => r.status()),
      ...(this.alerting ? { alerts: this.alerting.manager.counts() } : {}),
    };
  }

  /** Listen, write pid/token/control.json, start the named services. */
  async run(config: Config, registry: OpRegistry, configPath: string | undefined, start: string[]): Promise<void> {
    guardStderr();
    process.on("uncaughtException", (e) =>
      this.#log.error("supervisor: uncaught exception (kept running)", { err: String(e?.stack ?? e) }),
    );
    process.on("unhandledRejection", (e) =>
      this.#log.error("supervisor: unhandled rejection", { err: String((e as Error)?.stack ?? e) }),
    );
    // Files written before umask 0o077 existed (upgrades) are tightened once here.
    tightenModes(this.#paths.home, (file, error) => this.#log.warn("cannot tighten file mode", { file, error }));
    const token = readControlToken(config, this.#paths) ?? randomBytes(24).toString("base64url");
    if (!config.control.token) this.#put(controlTokenFile(this.#paths), `${token}\n`);
    this.alerting = new Alerting(config, makeContext({ config, configPath, log: this.#log }), this.#log);
    this.#server = await startControlApi({ supervisor: this, registry, config, configPath, token, log: this.#log });
    const addr = this.#server.address() as AddressInfo;
    this.#url = baseUrl("http", config.control.host, addr.port);
    this.#put(this.#paths.pidFile(SUPERVISOR), `${process.pid}\n`);
    const info: ControlInfo = { pid: process.pid, url: this.#url, startedAt: this.#startedAt };
    this.#put(controlInfoFile(this.#paths), JSON.stringify(info));
    this.#log.info("supervisor listening", { url: this.#url, start });
    this.alerting.start(() => this.status());
    for (const s of start) {
      await this.runner(s)
        .start()
        .catch((e) => this.#log.error("cannot start service", { service: s, error: (e as Error).message }));
    }
    const onSignal = () => void this.shutdown().then(() => process.exit(0));
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  }

  /** Stop every service, then the API; removes the supervisor's run files. */
  shutdown(): Promise<void> {
    this.#closing ??= (async () => {
      this.#log.info("supervisor shutting down");
      clearInterval(this.#retryTimer);
      this.alerting?.stop();
      await Promise.all([...this.runners.values()].map((r) => r.close()));
      removeFile(this.#paths.pidFile(SUPERVISOR));
      removeFile(controlInfoFile(this.#paths));
      this.#server?.closeAllConnections();
      await new Promise<void>((r) => (this.#server ? this.#server.close(() => r()) : r()));
    })();
    return this.#closing;
  }

  /** Write a run file atomically (temp + rename, 0600); on failure keep it pending and retry, never throw. */
  #put(file: string, content: string): void {
    const tmp = `${file}.tmp`;
    try {
      writeFileSync(tmp, content, { mode: 0o600 });
      renameSync(tmp, file);
      this.#pending.delete(file);
    } catch (e) {
      removeFile(tmp);
      if (!this.#pending.has(file)) {
        this.#log.error("cannot write run file; retrying every second", { file, error: (e as Error).message });
      }
      this.#pending.set(file, content);
      this.#retryTimer ??= setInterval(() => {
        for (const [f, c] of this.#pending) this.#put(f, c);
        if (this.#pending.size === 0) {
          clearInterval(this.#retryTimer);
          this.alerting?.stop();
          this.#retryTimer = undefined;
        }
      }, 1000);
    }
  }
}
