/**
 * Real OBS Studio for the e2e tests: `launchObs` starts OBS headless (xvfb-run, software GL) with a throwaway config
 * directory and its obs-websocket 5 server on a known port and password; `ObsClient` speaks the obs-websocket 5
 * protocol (Hello / Identify with the auth challenge, requests, events) over the `ws` package. Small on purpose: the
 * OBS automation issue builds on it.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { freePort } from "../../../src/test/cli.ts";

/** OBS and xvfb-run are installed (Debian: obs-studio, xvfb). */
export const hasObs =
  spawnSync("obs", ["--version"], { stdio: "ignore" }).status === 0 &&
  spawnSync("sh", ["-c", "command -v xvfb-run"], { stdio: "ignore" }).status === 0;

/** obs-websocket 5 opcodes (protocol.md "Message Types"). */
const OP = { Hello: 0, Identify: 1, Identified: 2, Event: 5, Request: 6, RequestResponse: 7 } as const;
/** EventSubscription.All: every non-high-volume event category. */
const ALL_EVENTS = 0x7ff;

/** A request obs-websocket answered with requestStatus.result false. */
export class ObsRequestError extends Error {
  readonly code: number;
  constructor(type: string, code: number, comment: string | undefined) {
    super(`OBS ${type} failed: ${code}${comment ? ` ${comment}` : ""}`);
    this.code = code;
  }
}

type Data = Record<string, unknown>;
interface Pending {
  type: string;
  resolve: (d: Data) => void;
  reject: (e: Error) => void;
}
interface Waiter {
  type: string;
  match: (d: Data) => boolean;
  resolve: (d: Data) => void;
}

/** The auth string of Identify: base64(sha256(base64(sha256(password + salt)) + challenge)). */
export function obsAuth(password: string, salt: string, challenge: string): string {
  const b64sha = (s: string) => createHash("sha256").update(s).digest("base64");
  return b64sha(b64sha(password + salt) + challenge);
}

/** An identified obs-websocket 5 session. */
export class ObsClient {
  readonly #ws: WebSocket;
  readonly #pending = new Map<string, Pending>();
  #waiters: Waiter[] = [];
  #next = 1;
  /** Every event received, oldest first (type and data), for assertions and diagnostics. */
  readonly events: { type: string; data: Data }[] = [];

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on("message", (raw) => this.#onMessage(JSON.parse(String(raw)) as { op: number; d: Data }));
    ws.on("close", () => {
      for (const p of this.#pending.values()) p.reject(new Error(`OBS connection closed during ${p.type}`));
      this.#pending.clear();
    });
  }

  /** Connects and identifies (answering the auth challenge when the server sets one). */
  static connect(url: string, password: string, eventSubscriptions = ALL_EVENTS): Promise<ObsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, "obswebsocket.json");
      const fail = (e: Error) => {
        ws.terminate();
        reject(e);
      };
      ws.once("error", fail);
      ws.once("close", (code, reason) => fail(new Error(`OBS closed the connection: ${code} ${reason}`)));
      ws.on("message", function handshake(raw) {
        const m = JSON.parse(String(raw)) as { op: number; d: Data };
        if (m.op === OP.Hello) {
          const auth = m.d.authentication as { challenge: string; salt: string } | undefined;
          const d: Data = { rpcVersion: 1, eventSubscriptions };
          if (auth) d.authentication = obsAuth(password, auth.salt, auth.challenge);
          ws.send(JSON.stringify({ op: OP.Identify, d }));
        } else if (m.op === OP.Identified) {
          ws.off("message", handshake);
          ws.removeAllListeners("close").removeAllListeners("error");
          ws.on("error", () => {}); // a dying OBS must not crash the test process; pending requests reject on close
          resolve(new ObsClient(ws));
        }
      });
    });
  }

  /** Sends a request; resolves with its responseData, rejects with ObsRequestError when OBS says it failed. */
  request<T = Data>(requestType: string, requestData?: Data): Promise<T> {
    const requestId = String(this.#next++);
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(requestId, { type: requestType, resolve: resolve as (d: Data) => void, reject });
      this.#ws.send(JSON.stringify({ op: OP.Request, d: { requestType, requestId, requestData } }));
    });
  }

  /** The next event of `type` (seen from now on) whose data satisfies `match`. */
  nextEvent(type: string, match: (d: Data) => boolean = () => true, ms = 30000): Promise<Data> {
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        type,
        match,
        resolve: (d) => {
          clearTimeout(t);
          resolve(d);
        },
      };
      const t = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        const seen = this.events.slice(-5).map((e) => `${e.type} ${JSON.stringify(e.data)}`);
        reject(new Error(`timed out waiting for OBS event ${type}; last events:\n${seen.join("\n")}`));
      }, ms);
      this.#waiters.push(w);
    });
  }

  close(): void {
    this.#ws.terminate();
  }

  #onMessage(m: { op: number; d: Data }): void {
    if (m.op === OP.RequestResponse) {
      const p = this.#pending.get(String(m.d.requestId));
      if (!p) return;
      this.#pending.delete(String(m.d.requestId));
      const s = m.d.requestStatus as { result: boolean; code: number; comment?: string };
      if (s.result) p.resolve((m.d.responseData ?? {}) as Data);
      else p.reject(new ObsRequestError(p.type, s.code, s.comment));
    } else if (m.op === OP.Event) {
      const type = String(m.d.eventType);
      const data = (m.d.eventData ?? {}) as Data;
      this.events.push({ type, data });
      const hit = this.#waiters.filter((w) => w.type === type && w.match(data));
      this.#waiters = this.#waiters.filter((w) => !hit.includes(w));
      for (const w of hit) w.resolve(data);
    }
  }
}

/** A running headless OBS: its websocket session, its log so far, and a reliable stop. */
export interface ObsProcess {
  client: ObsClient;
  proc: ChildProcess;
  log: () => string;
  /** Ends OBS, its Xvfb and xvfb-run (one process group): TERM, then KILL if it lingers. */
  stop: () => Promise<void>;
}

/**
 * Starts OBS under `xvfb-run -a` with `home` as HOME and XDG_CONFIG_HOME parent (nothing of the user's OBS is read or
 * written), obs-websocket enabled on a free port with `password`, and returns once the websocket session is
 * identified. The process group is detached so `stop` reaches Xvfb too.
 */
export async function launchObs(home: string, password: string, timeoutMs = 60000): Promise<ObsProcess> {
  const port = await freePort();
  const cfg = join(home, ".config");
  mkdirSync(join(cfg, "obs-studio"), { recursive: true });
  // FirstRun=true skips the auto-configuration wizard; the [OBSWebSocket] keys are what obs-websocket 5.0/5.1
  // (OBS 28/29) reads (OBS 30+ moved them to plugin_config/obs-websocket/config.json, written too for later OBS).
  const ws = { ServerEnabled: true, ServerPort: port, AuthRequired: true, ServerPassword: password };
  const ini = Object.entries({ FirstLoad: false, AlertsEnabled: false, ...ws }).map(([k, v]) => `${k}=${v}`);
  writeFileSync(
    join(cfg, "obs-studio", "global.ini"),
    ["[General]", "FirstRun=true", "EnableAutoUpdates=false", "", "[OBSWebSocket]", ...ini, ""].join("\n"),
  );
  const pluginDir = join(cfg, "obs-studio", "plugin_config", "obs-websocket");
  mkdirSync(pluginDir, { recursive: true });
  const json = { first_load: false, alerts_enabled: false, server_enabled: true, server_port: port };
  writeFileSync(
    join(pluginDir, "config.json"),
    JSON.stringify({ ...json, auth_required: true, server_password: password }),
  );

  const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: cfg, LIBGL_ALWAYS_SOFTWARE: "1" };
  const args = ["-a", "obs", "--multi", "--minimize-to-tray", "--disable-missing-files-check"];
  const proc = spawn("xvfb-run", args, { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (d: Buffer) => {
    out = (out + d).slice(-200_000); // OBS logs to stdout; the tail is enough to see why something failed
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const stop = async () => {
    const group = (sig: NodeJS.Signals | 0): boolean => {
      try {
        if (proc.pid) process.kill(-proc.pid, sig);
        return true;
      } catch {
        return false; // the group is gone
      }
    };
    // TERM lets Xvfb remove its /tmp/.X<n>-lock (xvfb-run -a picks the display from those); KILL what lingers
    // (OBS can hang while shutting down).
    group("SIGTERM");
    const until = Date.now() + 5000;
    while (group(0) && Date.now() < until) await sleep(100);
    group("SIGKILL");
    await Promise.race([exited, sleep(2000)]);
  };

  const end = Date.now() + timeoutMs;
  for (;;) {
    if (gone) throw new Error(`OBS exited before its websocket answered:\n${out.slice(-4000)}`);
    try {
      const client = await ObsClient.connect(`ws://127.0.0.1:${port}`, password);
      return { client, proc, log: () => out, stop };
    } catch (e) {
      if (Date.now() > end) {
        await stop();
        throw new Error(
          `OBS websocket did not answer in ${timeoutMs} ms (${(e as Error).message}):\n${out.slice(-4000)}`,
        );
      }
      await sleep(500);
    }
  }
}
