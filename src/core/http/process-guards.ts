/**
 * Last line of defence for a service process: a rejection or exception that escaped every per-request
 * boundary is logged and the process goes on serving. A burst of them (a broken state, not one bad request)
 * still exits so the supervisor restarts it clean. A failed write on a full disk (a stream's unhandled 'error')
 * changed no state and never counts: exiting would only turn "the disk is full" into a restart loop.
 */
import { isDiskFull } from "../errors.ts";
import type { Logger } from "../logger.ts";

export function installProcessGuards(log: Logger, opts: { burst?: number; windowMs?: number } = {}): void {
  const burst = opts.burst ?? 20;
  const windowMs = opts.windowMs ?? 60_000;
  let times: number[] = [];
  const note = (kind: string, e: unknown) => {
    if (isDiskFull(e)) {
      log.error(`${kind}: write failed, disk full (process kept running)`, {
        error: String((e as Error)?.message ?? e),
      });
      return;
    }
    const now = Date.now();
    times = times.filter((t) => now - t < windowMs);
    times.push(now);
    log.error(`${kind} (process kept running)`, { error: String((e as Error)?.stack ?? e).slice(0, 4000) });
    if (times.length >= burst) {
      log.error(`${burst} uncaught errors within ${windowMs} ms: exiting for a clean restart`);
      process.exit(70);
    }
  };
  process.on("unhandledRejection", (e) => note("unhandled rejection", e));
  process.on("uncaughtException", (e) => note("uncaught exception", e));
}
