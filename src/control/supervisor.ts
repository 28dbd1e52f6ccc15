/** The supervisor daemon: owns one ServiceRunner per service and serves the control API until shut down. */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Config } from "../core/config.ts";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { OpRegistry } from "../core/ops.ts";
import type { RuntimePaths } from "../core/paths.ts";
import type { ServiceDef } from "../core/service.ts";
import { startControlApi } from "./api.ts";
import { controlInfoFile, controlTokenFile, readControlToken, SUPERVISOR } from "./client.ts";
import { removeFile, writePid } from "./proc.ts";
import { ServiceRunner } from "./runner.ts";
import type { ControlInfo, SupervisorStatus } from "./state.ts";

export class Supervisor {
  readonly runners = new Map<string, ServiceRunner>();
  readonly #startedAt = Date.now();
  #server: Server | undefined;
  #url: string | null = null;
  #closing: Promise<void> | undefined;
  readonly #paths: RuntimePaths;
  readonly #log: Logger;

  constructor(
    opts: { config: Config; configPath: string | undefined; paths: RuntimePaths; log: Logger },
    defs: ServiceDef[],
  ) {
    this.#paths = opts.paths;
    this.#log = opts.log;
    for (const d of defs) {
      this.runners.set(d.name, new ServiceRunner(d, opts.config, opts.configPath, opts.paths, opts.log));
    }
  }

  runner(name: string): ServiceRunner {
    const r = this.runners.get(name);
    if (!r)
      throw new AmiError("M_NOT_FOUND", `unknown service '${name}' (known: ${[...this.runners.keys()].join(", ")})`);
    return r;
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
    };
  }

  /** Listen, write pid/token/control.json, start the named services. */
  async run(config: Config, registry: OpRegistry, configPath: string | undefined, start: string[]): Promise<void> {
    const token = readControlToken(config, this.#paths) ?? randomBytes(24).toString("base64url");
    if (!config.control.token) writeFileSync(controlTokenFile(this.#paths), `${token}\n`, { mode: 0o600 });
    this.#server = await startControlApi({ supervisor: this, registry, config, configPath, token, log: this.#log });
    const addr = this.#server.address() as AddressInfo;
    this.#url = `http://${config.control.host}:${addr.port}`;
    writePid(this.#paths.pidFile(SUPERVISOR), process.pid);
    const info: ControlInfo = { pid: process.pid, url: this.#url, startedAt: this.#startedAt };
    writeFileSync(controlInfoFile(this.#paths), JSON.stringify(info));
    this.#log.info("supervisor listening", { url: this.#url, start });
    for (const s of start) await this.runner(s).start();
    const onSignal = () => void this.shutdown().then(() => process.exit(0));
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  }

  /** Stop every service, then the API; removes the supervisor's run files. */
  shutdown(): Promise<void> {
    this.#closing ??= (async () => {
      this.#log.info("supervisor shutting down");
      await Promise.all([...this.runners.values()].map((r) => r.stop()));
      removeFile(this.#paths.pidFile(SUPERVISOR));
      removeFile(controlInfoFile(this.#paths));
      this.#server?.closeAllConnections();
      await new Promise<void>((r) => (this.#server ? this.#server.close(() => r()) : r()));
    })();
    return this.#closing;
  }
}
