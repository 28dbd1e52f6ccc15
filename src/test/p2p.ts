/**
 * Helpers for P2P tests and benches: in-process nodes on temp dirs, a transmission-daemon driven by
 * transmission-remote, and the address real clients can reach us on (transmission 3 will not dial 127.0.0.0/8
 * peers a tracker hands it, so interop runs over this machine's own non-loopback address; nothing leaves it).
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { openStoreAt } from "../cas/open.ts";
import { silentLogger } from "../core/logger.ts";
import { P2pNode, type P2pNodeOptions } from "../p2p/node.ts";
import { freePort } from "./cli.ts";

const run = promisify(execFile);

/** The first non-internal IPv4 address (falls back to loopback, where transmission will not dial us). */
/** Whether `program --version` runs here (a client a test drives, from Debian's packages). */
export function installed(program: string): boolean {
  try {
    execFileSync(program, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export function localAddress(): string {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return "127.0.0.1";
}

export function makeNode(dir: string, o: Partial<P2pNodeOptions> = {}): P2pNode {
  return new P2pNode({
    dataDir: join(dir, "p2p"),
    cas: openStoreAt(join(dir, "cas")),
    log: silentLogger,
    host: "0.0.0.0",
    chokeIntervalMs: 1000,
    announceIntervalMs: 1000,
    ...o,
  });
}

export interface Transmission {
  rpc: number;
  /** Its peer port: TCP, and UDP for its DHT when that is on. */
  peer: number;
  cfg: string;
  remote(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/**
 * transmission-daemon in the foreground on its own config dir: no uTP (it dials uTP first and waits), DHT, LPD, PEX
 * unless `settings` says otherwise; `files` are written into the config dir first (its DHT reads dht.dat and
 * dht.bootstrap there).
 */
export async function startTransmission(
  dir: string,
  o: { settings?: Record<string, unknown>; files?: Record<string, string | Buffer>; logFile?: string } = {},
): Promise<Transmission> {
  const cfg = join(dir, "cfg");
  mkdirSync(cfg, { recursive: true });
  writeFileSync(
    join(cfg, "settings.json"),
    JSON.stringify({
      "utp-enabled": false,
      "dht-enabled": false,
      "lpd-enabled": false,
      "pex-enabled": false,
      "port-forwarding-enabled": false,
      encryption: 0,
      "message-level": 0,
      ...o.settings,
    }),
  );
  for (const [name, body] of Object.entries(o.files ?? {})) writeFileSync(join(cfg, name), body);
  const rpc = await freePort();
  const peer = await freePort();
  const child: ChildProcess = spawn(
    "transmission-daemon",
    [
      "-f",
      "-g",
      cfg,
      "-p",
      String(rpc),
      "-P",
      String(peer),
      "-w",
      join(dir, "dl"),
      "-r",
      "127.0.0.1",
      ...(o.logFile ? ["-e", o.logFile] : []),
    ],
    { stdio: "ignore" },
  );
  const remote = async (...args: string[]) => (await run("transmission-remote", [String(rpc), ...args])).stdout;
  for (let i = 0; ; i++) {
    try {
      await remote("-l");
      break;
    } catch (e) {
      if (i > 100) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    rpc,
    peer,
    cfg,
    remote,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
    },
  };
}

/** Run aria2c to completion (or `kill`); `done` resolves with its exit code and output. */
export function aria2(
  args: string[],
  timeoutMs = 50_000,
): { done: Promise<{ code: number | null; out: string }>; kill(): void } {
  let kill = (): void => {};
  const done = new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(
      "aria2c",
      [
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--console-log-level=warn",
        "--summary-interval=0",
        "--bt-stop-timeout=60",
        ...args,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    kill = () => child.kill("SIGTERM");
    const timer = setTimeout(kill, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
  return { done, kill };
}
