/** Client for the supervisor's control API. Finds it through the runtime dir: pid file, control.json, token file. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config.ts";
import { AmiError, type ErrorCode } from "../core/errors.ts";
import type { RuntimePaths } from "../core/paths.ts";
import { hasMarkers, homeProcesses, isOurProcess, readPid } from "./proc.ts";
import type { ControlInfo } from "./state.ts";

export const SUPERVISOR = "supervisor";
export const controlInfoFile = (paths: RuntimePaths): string => join(paths.run, "control.json");
export const controlTokenFile = (paths: RuntimePaths): string => join(paths.run, "control.token");

/**
 * The live supervisor's pid, or undefined. The pid file is checked against /proc (pids get reused); without one
 * (a disk too full to write it) /proc is searched for a supervisor of this runtime home.
 */
export function supervisorPid(paths: RuntimePaths): number | undefined {
  const pid = readPid(paths.pidFile(SUPERVISOR));
  if (pid !== undefined && isOurProcess(pid, ["supervise"])) return pid;
  return homeProcesses(paths.home).find((p) => hasMarkers(p.argv, ["supervise"]))?.pid;
}

export function readControlInfo(paths: RuntimePaths): ControlInfo | undefined {
  const f = controlInfoFile(paths);
  if (!existsSync(f)) return undefined;
  try {
    return JSON.parse(readFileSync(f, "utf8")) as ControlInfo;
  } catch {
    return undefined;
  }
}

export function readControlToken(config: Config, paths: RuntimePaths): string | undefined {
  if (config.control.token) return config.control.token;
  const f = controlTokenFile(paths);
  return existsSync(f) ? readFileSync(f, "utf8").trim() : undefined;
}

export class ControlClient {
  readonly url: string;
  readonly pid: number;
  readonly #token: string;

  constructor(info: ControlInfo, token: string) {
    this.url = info.url;
    this.pid = info.pid;
    this.#token = token;
  }

  async request<T>(method: "GET" | "POST", path: string, body?: unknown, timeoutMs = 120_000): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        method,
        headers: { authorization: `Bearer ${this.#token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new AmiError("AMI_NOT_RUNNING", `supervisor at ${this.url} is not answering: ${(e as Error).message}`);
    }
    const text = await res.text();
    const json = text ? JSON.parse(text) : undefined;
    if (!res.ok) {
      const code = (json?.errcode ?? "AMI_INTERNAL") as ErrorCode;
      const { errcode: _c, error, ...extra } = json ?? {};
      throw new AmiError(code, error ?? `control API ${method} ${path}: HTTP ${res.status}`, extra, res.status);
    }
    return json as T;
  }
}

/** A client for the running supervisor, or undefined when none is running. */
export function connectControl(config: Config, paths: RuntimePaths): ControlClient | undefined {
  const pid = supervisorPid(paths);
  if (pid === undefined) return undefined;
  const info = readControlInfo(paths);
  const token = readControlToken(config, paths);
  if (!info || info.pid !== pid || !token) return undefined;
  return new ControlClient(info, token);
}
