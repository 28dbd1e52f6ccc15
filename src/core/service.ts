/**
 * What a supervised service is. Each service runs in its own process (`ami-streams serve <name>`),
 * started by the supervisor; the supervisor and the monitor talk to it only over HTTP
 * (`GET /health`, `GET /metrics` Prometheus text, `GET /_ami/stats` JSON key figures).
 */
import type { Config } from "../config.ts";
import type { Logger } from "./logger.ts";
import type { RuntimePaths } from "./paths.ts";

export interface ServiceHandle {
  /** Base URL the service answers on, e.g. http://127.0.0.1:8008 */
  url: string;
  close(): Promise<void>;
}

export interface ServiceInstance {
  /** Passed to `serve <name> --instance <id>`; the unit is named `<name>-<id>`. */
  id: string;
  summary: string;
  baseUrl: string;
  /** Started by `up` (a deployed node comes back with the fleet). */
  enabled: boolean;
}

export interface ServiceDef {
  name: string;
  summary: string;
  enabled(config: Config): boolean;
  /** Base URL for health/metrics/stats, derived from config (known before the process starts). */
  baseUrl(config: Config): string;
  /** Lines to print after `up` (URLs, how to log in). */
  describe(config: Config, paths: RuntimePaths): string[];
  /**
   * Runs inside the service process. Resolves once listening. `instance`: which of `instances` this process is
   * (`serve <name> --instance <id>`); absent: the service itself.
   */
  start(
    config: Config,
    ctx: { paths: RuntimePaths; log: Logger; configPath?: string; instance?: string },
  ): Promise<ServiceHandle>;
  /**
   * Extra named copies of the service the supervisor runs as units of their own (restarted with backoff, in
   * `status` and the monitor), e.g. the edge nodes `cdn deploy` adds: read from the runtime home at each call.
   */
  instances?(config: Config, home: string): ServiceInstance[];
  /**
   * A service that can run as several processes (`<name> start --workers N`): the config with N workers, or an
   * AMI_INVALID_CONFIG error naming why not. Absent: one process only.
   */
  withWorkers?(config: Config, workers: number): Config;
  /**
   * Boolean flags `<name> start|restart` accept (flag → description), e.g. p2p's `--bootstrap`. The op writes
   * the ones given to <home>/run/<name>.flags.json before starting; the service reads them with `startFlags()`.
   */
  startFlags?: Record<string, string>;
  /**
   * More lines for `<name> status` while it runs (e.g. p2p's torrents and DHT figures), asked of the running
   * service; a failure leaves them out.
   */
  statusDetail?(config: Config): Promise<string[]>;
}
