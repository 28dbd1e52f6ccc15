/** Runtime directory layout: one root (`AMI_STREAMS_HOME`, default ~/.ami-streams) for pid, state, logs and data. */
import { mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export interface RuntimePaths {
  home: string;
  run: string;
  logs: string;
  data: string;
  /** Per-service data directory, created on demand. */
  serviceData(service: string): string;
  pidFile(service: string): string;
  logFile(service: string): string;
}

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.AMI_STREAMS_HOME || join(homedir(), ".ami-streams"));
}

export function runtimePaths(home: string): RuntimePaths {
  const root = resolve(home);
  const mk = (p: string) => {
    mkdirSync(p, { recursive: true });
    return p;
  };
  return {
    home: root,
    get run() {
      return mk(join(root, "run"));
    },
    get logs() {
      return mk(join(root, "logs"));
    },
    get data() {
      return mk(join(root, "data"));
    },
    serviceData: (s) => mk(join(root, "data", s)),
    pidFile: (s) => join(mk(join(root, "run")), `${s}.pid`),
    logFile: (s) => join(mk(join(root, "logs")), `${s}.log`),
  };
}
