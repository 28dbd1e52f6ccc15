/** Shared bench plumbing: result rows, percentiles, the bare node:http baseline process, load helpers. */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NewEvent } from "../../src/matrix/store/types.ts";

export interface BenchResult {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  /** The same-run baseline, described. */
  baseline: string;
  /** The target, e.g. "<= 5 ms"; "" when none. */
  target: string;
  /** Whether the target is met (null when there is no target). */
  met: boolean | null;
}

/** Rows of one bench with no target: `row(metric, value, unit, baseline?)`, the baseline defaulting to `baseline`. */
export const untargetedRows =
  (bench: string, baseline = "") =>
  (metric: string, value: number, unit: string, base = baseline): BenchResult => ({
    bench,
    metric,
    value,
    unit,
    baseline: base,
    target: "",
    met: null,
  });

export const percentile = (xs: number[], p: number): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

export const round = (n: number, digits = 2): number => Number(n.toFixed(digits));

export function printTable(rows: BenchResult[]): void {
  const cols = ["bench", "metric", "value", "target", "met", "same-run baseline"];
  const data = rows.map((r) => [
    r.bench,
    r.metric,
    `${r.value} ${r.unit}`,
    r.target,
    r.met === null ? "" : r.met ? "yes" : "NO",
    r.baseline,
  ]);
  const w = cols.map((c, i) => Math.max(c.length, ...data.map((d) => d[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join(" | ");
  console.log(line(cols));
  console.log(w.map((n) => "-".repeat(n)).join("-|-"));
  for (const d of data) console.log(line(d));
}

/** Run a bench module's `run()` when the file is executed directly, and print its rows. */
export async function runIfMain(meta: ImportMeta, run: () => Promise<BenchResult[]>): Promise<void> {
  if (!meta.main) return;
  const rows = await run();
  printTable(rows);
  if (process.argv.includes("--json")) console.log(JSON.stringify(rows));
}

/** A bare node:http server in a child process: the baseline every HTTP figure is compared with. */
export class BareServer {
  url = "";
  #proc: ChildProcess | null = null;

  static async start(bodyBytes = 0): Promise<BareServer> {
    const s = new BareServer();
    // Same flags and compile cache as the homeserver child, so the memory baseline compares like with like.
    const entry = fileURLToPath(new URL("./bare-server.ts", import.meta.url));
    const proc = spawn(process.execPath, ["--max-semi-space-size=1", entry], {
      env: {
        NODE_COMPILE_CACHE: join(tmpdir(), "node-compile-cache"),
        ...process.env,
        BENCH_BODY_BYTES: String(bodyBytes),
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    s.#proc = proc;
    s.url = await new Promise<string>((resolve, reject) => {
      let out = "";
      proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        const m = /LISTENING (\S+)\n/.exec(out);
        if (m) resolve(m[1]);
      });
      proc.once("exit", (c) => reject(new Error(`bare server exited (${c})`)));
    });
    return s;
  }

  get pid(): number {
    return this.#proc!.pid!;
  }

  async stop(): Promise<void> {
    const p = this.#proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await exited;
  }
}

export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** utime + stime of a process, in clock ticks (100 per second on Linux). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]);
}

/** Average cores used by `pid` since `ticks0` over `seconds`. */
export const cpuShare = (pid: number, ticks0: number, seconds: number): number =>
  (cpuTicks(pid) - ticks0) / 100 / seconds;

export const mb = (bytes: number): number => round(bytes / 1024 / 1024, 1);

/**
 * A minimal keep-alive HTTP/1.1 client on node:http, used for every timed request (homeserver and baseline
 * alike) so the client side costs the same in both.
 */
export class HttpClient {
  readonly #agent: Agent;
  readonly #base: URL;
  constructor(base: string, maxSockets = 256) {
    this.#base = new URL(base);
    this.#agent = new Agent({ keepAlive: true, maxSockets });
  }

  call(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; text: string }> {
    const data = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const headers: Record<string, string | number> = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (data !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = Buffer.byteLength(data);
    }
    return new Promise((resolve, reject) => {
      const req = request(
        { host: this.#base.hostname, port: this.#base.port, method, path, headers, agent: this.#agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(data);
    });
  }

  async json(method: string, path: string, token?: string, body?: unknown): Promise<any> {
    const r = await this.call(method, path, token, body);
    if (r.status !== 200) throw new Error(`${method} ${path} -> ${r.status} ${r.text.slice(0, 300)}`);
    return JSON.parse(r.text);
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** Round-trip times (ms) of `n` sequential GETs. */
export async function roundTrips(c: HttpClient, path: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await c.call("GET", path);
    out.push(performance.now() - t);
  }
  return out;
}

/** Run `worker(i)` on `concurrency` lanes until `items` are done. */
export async function pool<T>(items: T[], concurrency: number, worker: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await worker(items[next++]);
    }),
  );
}

/**
 * Bench message `i` (body `body`) at stream position `stream`, as the store is given it: an unsigned
 * `m.room.message` PDU with no prev or auth events, for filling a room directly through the store.
 */
export function benchMessage(i: number, stream: number, roomId: string, sender: string, body: string): NewEvent {
  const pdu = {
    room_id: roomId,
    type: "m.room.message",
    sender,
    content: { msgtype: "m.text", body },
    origin_server_ts: Date.now(),
    depth: stream,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: "bench" },
    signatures: {},
  };
  return {
    stream,
    eventId: `$bench${i}`,
    roomId,
    type: "m.room.message",
    stateKey: null,
    sender,
    originServerTs: pdu.origin_server_ts,
    depth: stream,
    pdu,
  };
}
