/**
 * `matrix.workers` > 1: the matrix service process is worker 0 and forks workers 1..N-1 (worker-main.ts), all
 * listening on the same port with SO_REUSEPORT (the kernel spreads connections) over one PostgreSQL database and
 * Redis. Every worker serves every route: what one learns, the others hear on the bus (cluster/index.ts), so no
 * request needs a particular worker and a long-poll or WebSocket stays on the worker its connection landed on.
 * A worker that dies is forked again after a pause; its clients reconnect and land on the others meanwhile.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Config } from "../../config.ts";
import { AmiError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";

const MAIN = fileURLToPath(new URL("./worker-main.ts", import.meta.url));
/** A worker's start-up (store, Redis, listen) past this fails it. */
const START_TIMEOUT_MS = 60_000;
const RESTART_DELAY_MS = 1000;

export interface WorkerSet {
  /** PIDs of the running forked workers (not this process). */
  pids(): number[];
  close(): Promise<void>;
}

/** Fork workers 1..count-1 for `matrix` (the homeserver config worker 0 runs with) and wait until all listen. */
export async function forkWorkers(config: Config, matrix: Config["matrix"], log: Logger): Promise<WorkerSet> {
  const procs = new Map<number, ChildProcess>();
  let closing = false;

  const spawnOne = (i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = fork(MAIN, [], {
        execArgv: ["--max-semi-space-size=1"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      procs.set(i, child);
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new AmiError("AMI_UNAVAILABLE", `matrix worker ${i} did not start within ${START_TIMEOUT_MS} ms`));
      }, START_TIMEOUT_MS);
      child.on("message", (m: { ready?: string; error?: string }) => {
        clearTimeout(timer);
        if (m.ready) resolve();
        else reject(new AmiError("AMI_UNAVAILABLE", `matrix worker ${i}: ${m.error ?? "failed"}`));
      });
      child.once("exit", (code, sig) => {
        clearTimeout(timer);
        reject(new AmiError("AMI_UNAVAILABLE", `matrix worker ${i} exited (code ${code}, signal ${sig})`));
        if (procs.get(i) !== child || closing) return;
        procs.delete(i);
        log.warn("matrix worker died; forking it again", { worker: i, code, signal: sig });
        setTimeout(() => {
          if (!closing)
            spawnOne(i).catch((e) => log.error("matrix worker restart failed", { worker: i, error: String(e) }));
        }, RESTART_DELAY_MS).unref();
      });
      child.send({ config, matrix, worker: i });
    });

  const set: WorkerSet = {
    pids: () => [...procs.values()].flatMap((p) => (p.pid && p.exitCode === null ? [p.pid] : [])),
    async close() {
      closing = true;
      await Promise.all(
        [...procs.values()].map(
          (p) =>
            new Promise<void>((resolve) => {
              if (p.exitCode !== null || p.signalCode !== null) return resolve();
              const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
              p.once("exit", () => {
                clearTimeout(t);
                resolve();
              });
              p.kill("SIGTERM");
            }),
        ),
      );
    },
  };
  try {
    await Promise.all(Array.from({ length: matrix.workers - 1 }, (_, k) => spawnOne(k + 1)));
  } catch (e) {
    await set.close();
    throw e;
  }
  log.info("matrix workers listening", { workers: matrix.workers, pids: set.pids() });
  return set;
}
