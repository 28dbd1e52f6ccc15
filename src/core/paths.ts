/**
 * Runtime directory layout: one root (`AMI_STREAMS_HOME`, default ~/.ami-streams) for pid, state, logs and data.
 * It holds tokens, keys, databases and recordings, so it is private: directories 0700, files 0600 (every process
 * runs with umask 0o077, see bin/ami-streams.ts; tightenModes fixes what older versions left readable).
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync } from "node:fs";
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
    mkdirSync(p, { recursive: true, mode: 0o700 });
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

/**
 * Take group and other permissions off everything under `home` (owner bits kept: 0644 → 0600, 0755 → 0700).
 * Symlinks are not followed: what they point at is not ours to change. Failures are reported, never thrown.
 */
export function tightenModes(home: string, onError: (path: string, error: string) => void = () => {}): void {
  const visit = (p: string) => {
    try {
      const st = lstatSync(p);
      if (st.isSymbolicLink()) return;
      if ((st.mode & 0o077) !== 0) chmodSync(p, st.mode & 0o7700);
      if (st.isDirectory()) for (const e of readdirSync(p)) visit(join(p, e));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") onError(p, (e as Error).message);
    }
  };
  visit(resolve(home));
}
