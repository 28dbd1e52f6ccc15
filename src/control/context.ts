/** Builds the OpContext every surface (CLI, MCP, control API) hands to op handlers. */
import { type Config, homeFor } from "../config.ts";
import { createLogger, type Logger } from "../core/logger.ts";
import type { OpContext } from "../core/ops.ts";
import { runtimePaths } from "../core/paths.ts";
import { loadRegistry } from "./registry.ts";

export interface ContextOptions {
  config: Config;
  configPath: string | undefined;
  log?: Logger;
  progress?: OpContext["progress"];
  print?: OpContext["print"];
  interactive?: boolean;
  signal?: AbortSignal;
  /** The runtime home, over `AMI_STREAMS_HOME` and `config.home` (for ops run in-process on a home of one's own). */
  home?: string;
}

export function makeContext(o: ContextOptions): OpContext {
  return {
    config: o.config,
    configPath: o.configPath,
    paths: runtimePaths(o.home ?? homeFor(o.config)),
    log: o.log ?? createLogger({ level: o.config.log.level }),
    progress: o.progress ?? (() => {}),
    print: o.print ?? (() => {}),
    interactive: o.interactive ?? false,
    signal: o.signal ?? new AbortController().signal,
    registry: (only) => loadRegistry(o.config, only),
  };
}
