/** matrix-js-sdk logging routed away from stdout, which belongs to --json output and MCP stdio. */
import type { Logger as SdkLogger } from "matrix-js-sdk/lib/logger.js";
import { logger as sdkRootLogger } from "matrix-js-sdk/lib/logger.js";
import type { Logger } from "../core/logger.ts";

let quieted = false;

/**
 * The SDK's module-level loggers print every request at debug level through console.log/info (stdout).
 * Keep only errors, on stderr (its warnings are routine: "persist already in flight"...). Per-client warnings
 * still reach the agent's logger. `AMI_SDK_LOG=1` leaves the SDK's own logging alone.
 */
export function quietSdkRootLogger(): void {
  if (quieted || process.env.AMI_SDK_LOG) return;
  quieted = true;
  const root = sdkRootLogger as unknown as { methodFactory: unknown; rebuild(): void };
  root.methodFactory = (method: string) =>
    method === "error" ? (...args: unknown[]) => console.error(...args) : () => {};
  root.rebuild();
}

/** A per-client logger: warnings and errors go to `log` (if any), the rest is dropped. */
export function sdkLogger(log: Logger | undefined, prefix = "matrix-js-sdk"): SdkLogger {
  const text = (args: unknown[]) => args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ");
  return {
    trace() {},
    debug() {},
    info() {},
    warn: (...a: unknown[]) => log?.warn(text(a), { component: prefix }),
    error: (...a: unknown[]) => log?.error(text(a), { component: prefix }),
    getChild: (ns: string) => sdkLogger(log, `${prefix}:${ns}`),
  };
}
