/**
 * What the supervisor runs, in one shape: our Node services (`ami-streams serve <name>`) and external programs
 * (a feature's defineProgram, or the config's `programs:`). The runner, `up`/`down`/`status`, the monitor and the
 * generated `<name> start|stop|status|restart` ops see only this.
 */
import { dirname, resolve } from "node:path";
import { type Config, defaultConfig, homeFor, loadConfig } from "../config.ts";
import type { RuntimePaths } from "../core/paths.ts";
import type { ProgramDef, ProgramSpec, RestartPolicy } from "../core/program.ts";
import type { ServiceDef, ServiceInstance } from "../core/service.ts";
import { binEntry } from "./bin-path.ts";
import { probe } from "./health.ts";
import {
  HOME_ENV,
  hasMarkers,
  homeProcesses,
  isOurProcess,
  isProgramProcess,
  PROGRAM_ENV,
  programProcesses,
} from "./proc.ts";
import { programs, services } from "./services.ts";

export interface Launch {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string | undefined;
  /** Own process group: stop signals go to the program and whatever it started. */
  group: boolean;
}

export interface Unit {
  name: string;
  kind: "service" | "program";
  /** An instance of this service (ServiceDef.instances): supervised like the rest, but no `<name> start` ops. */
  instanceOf?: string;
  /** Set for a service that can run as several processes (ServiceDef.withWorkers). */
  withWorkers?: (config: Config, workers: number) => Config;
  /** ServiceDef.startFlags. */
  startFlags?: Record<string, string>;
  /** ServiceDef.statusDetail. */
  statusDetail?: (config: Config) => Promise<string[]>;
  summary: string;
  enabled(config: Config): boolean;
  /** Where it answers (a service's base URL; a program's health target, or "-"). */
  url(config: Config): string;
  statsUrl(config: Config): string | null;
  describe(config: Config, paths: RuntimePaths): string[];
  launch(config: Config, configPath: string | undefined, home: string): Launch;
  /** Undefined: no health check, alive counts as healthy. */
  probe(config: Config, configPath: string | undefined, home: string): Promise<boolean> | undefined;
  readyTimeoutMs(config: Config): number;
  stopSignal(config: Config): NodeJS.Signals;
  stopGraceMs(config: Config): number;
  restart(config: Config): RestartPolicy;
  /** Its processes running for runtime home `home` (found in /proc), the main one first. */
  find(home: string): number[];
  /** `pid` is (still) this unit's process for `home`: pids get reused. */
  owns(pid: number, home: string): boolean;
}

/** A service, or with `inst` one of its instances (`serve <name> --instance <id>`, unit `<name>-<id>`). */
export function serviceUnit(def: ServiceDef, inst?: ServiceInstance): Unit {
  const marks = inst ? ["serve", def.name, "--instance", inst.id] : ["serve", def.name];
  // The service's own process is `serve <name>` followed by anything but --instance.
  const mine = (argv: string[]) =>
    hasMarkers(argv, marks) && (inst !== undefined || !hasMarkers(argv, [...marks, "--instance"]));
  const base = (c: Config) => (inst ? inst.baseUrl : def.baseUrl(c));
  return {
    name: inst ? `${def.name}-${inst.id}` : def.name,
    kind: "service",
    instanceOf: inst ? def.name : undefined,
    withWorkers: def.withWorkers ? (c, n) => def.withWorkers!(c, n) : undefined,
    startFlags: def.startFlags,
    statusDetail: !inst && def.statusDetail ? (c) => def.statusDetail!(c) : undefined,
    summary: inst ? inst.summary : def.summary,
    enabled: (c) => (inst ? inst.enabled : def.enabled(c)),
    url: base,
    statsUrl: (c) => `${base(c)}/_ami/stats`,
    describe: (c, p) => (inst ? [`${def.name}-${inst.id}: ${inst.summary}`] : def.describe(c, p)),
    launch(_c, configPath, home) {
      // A 1 MB young generation keeps an idle service small; its throughput cost is negligible here.
      const args = ["--max-semi-space-size=1", binEntry, ...marks];
      if (configPath) args.push("--config", configPath);
      // glibc keeps freed large buffers (scrypt's 16 MiB per password hash) in per-thread pools for good;
      // a 128 KiB mmap threshold gives them back to the OS (~70 MB less resident after logins).
      // The runtime home in the environment lets `status`/`down` find the process in /proc without a pid file.
      const env: NodeJS.ProcessEnv = { MALLOC_MMAP_THRESHOLD_: "131072", ...process.env, [HOME_ENV]: home };
      delete env[PROGRAM_ENV];
      return { file: process.execPath, args, env, cwd: undefined, group: false };
    },
    probe: (c) =>
      fetch(`${base(c)}/health`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.ok)
        .catch(() => false),
    readyTimeoutMs: (c) => c.control.startTimeoutMs,
    stopSignal: () => "SIGTERM",
    stopGraceMs: (c) => c.control.stopGraceMs,
    restart: () => "always",
    find: (home) =>
      homeProcesses(home)
        .filter((p) => mine(p.argv))
        .map((p) => p.pid),
    owns: (pid) => isOurProcess(pid, marks) && (inst !== undefined || !isOurProcess(pid, [...marks, "--instance"])),
  };
}

/** Relative working directories are the config file's neighbours (the runtime home without a config file). */
function workDir(spec: ProgramSpec, configPath: string | undefined, home: string): string {
  const base = configPath ? dirname(resolve(configPath)) : home;
  return spec.cwd ? resolve(base, spec.cwd) : home;
}

/** An external program as a unit; `specOf` reads its spec from the config in effect. */
export function programUnit(
  name: string,
  summary: string,
  specOf: (c: Config) => ProgramSpec,
  enabled?: (c: Config) => boolean,
  describe?: (c: Config) => string[],
): Unit {
  const url = (c: Config) => {
    const h = specOf(c).health;
    if (!h) return "-";
    if ("http" in h) return h.http;
    if ("tcp" in h) return `tcp://${h.tcp}`;
    return `command: ${h.command.join(" ")}`;
  };
  return {
    name,
    kind: "program",
    summary,
    enabled: enabled ?? ((c) => specOf(c).enabled),
    url,
    statsUrl: (c) => specOf(c).statsUrl,
    describe: (c) => describe?.(c) ?? [`${name}: ${url(c)}`],
    launch(c, configPath, home) {
      const s = specOf(c);
      const env: NodeJS.ProcessEnv = { ...process.env, ...s.env, [HOME_ENV]: home, [PROGRAM_ENV]: name };
      return { file: s.argv[0], args: s.argv.slice(1), env, cwd: workDir(s, configPath, home), group: true };
    },
    probe(c, configPath, home) {
      const s = specOf(c);
      return s.health ? probe(s.health, workDir(s, configPath, home)) : undefined;
    },
    readyTimeoutMs: (c) => specOf(c).readyTimeoutSeconds * 1000,
    stopSignal: (c) => specOf(c).stopSignal,
    stopGraceMs: (c) => specOf(c).stopGraceMs,
    restart: (c) => specOf(c).restart,
    find: (home) =>
      programProcesses(home, name)
        .sort((a, b) => Number(b.root) - Number(a.root))
        .map((p) => p.pid),
    owns: (pid, home) => isProgramProcess(pid, home, name),
  };
}

function fromDef(def: ProgramDef): Unit {
  return programUnit(
    def.name,
    def.summary,
    (c) => def.spec(c),
    (c) => def.enabled(c),
    def.describe,
  );
}

/**
 * A program from the config. A later config without it (removed while running) keeps the last spec seen, so the
 * runner can still stop it as it was started.
 */
function fromConfig(name: string, first: ProgramSpec): Unit {
  let last = first;
  const specOf = (c: Config) => {
    last = c.programs[name] ?? last;
    return last;
  };
  return programUnit(
    name,
    `external program: ${first.argv.join(" ")}`,
    specOf,
    (c) => c.programs[name]?.enabled ?? false,
  );
}

/**
 * Every unit for `config`: our services, feature programs, then the config's programs (a config entry overrides a
 * feature program of the same name; our services' names are reserved).
 */
export function units(config: Config): Unit[] {
  const own = Object.entries(config.programs).map(([n, s]) => fromConfig(n, s));
  const names = new Set(own.map((u) => u.name));
  const home = homeFor(config);
  return [
    ...services.map((s) => serviceUnit(s)),
    ...services.flatMap((s) => (s.instances?.(config, home) ?? []).map((i) => serviceUnit(s, i))),
    ...programs.filter((p) => !names.has(p.name)).map(fromDef),
    ...own.filter((u) => !services.some((s) => s.name === u.name)),
  ];
}

/**
 * The config in effect, for listing units before a command has loaded it (the CLI builds its commands first); a
 * config that does not load lists no programs here, and the command itself then reports the error.
 */
export function peekConfig(explicit?: string): Config {
  try {
    return loadConfig(explicit).config;
  } catch {
    return defaultConfig();
  }
}
