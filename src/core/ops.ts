/**
 * The operation registry: every action is defined once here and becomes a CLI command
 * (`ami-streams matrix room send`), an MCP tool (`matrix_room_send`) and a control-API route
 * (`POST /api/ops/matrix.room.send`). The surfaces are generated from this data.
 */
import type { z } from "zod";
import type { Config } from "../config.ts";
import type { Logger } from "./logger.ts";
import type { RuntimePaths } from "./paths.ts";

export interface OpAnnotations {
  readOnly: boolean;
  destructive: boolean;
  idempotent: boolean;
  /** Talks to things outside ami-streams' own services (remote hosts, registries). */
  openWorld?: boolean;
}

export interface OpContext {
  config: Config;
  /** Path of the config file in use, if any (ops that edit config need it). */
  configPath: string | undefined;
  paths: RuntimePaths;
  log: Logger;
  /** Report progress of long work: a bar on a TTY, MCP progress notifications for agents. */
  progress(done: number, total: number | undefined, message?: string): void;
  signal: AbortSignal;
  /** Where human-readable streaming output goes (CLI: stdout unless --json; MCP: dropped). */
  print(line: string): void;
  /** True when invoked by the CLI on an interactive terminal (ops like `config edit` may open $EDITOR). */
  interactive: boolean;
  /** Every op (or just `only` features' ops), for ops that serve others: the supervisor's API, the MCP server. */
  registry(only?: readonly string[]): Promise<OpRegistry>;
}

export interface OpDef<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  /** Dotted name: `matrix.room.send` -> CLI `matrix room send`, MCP `matrix_room_send`. */
  name: string;
  summary: string;
  /** Longer help text (CLI --help, MCP description). */
  description?: string;
  input: I;
  output: O;
  annotations: OpAnnotations;
  /** Input keys that the CLI also takes as positional arguments, in order. */
  positional?: readonly string[];
  /** Short CLI flags: `{ f: "follow" }`. */
  short?: Record<string, string>;
  /** Human rendering of the result for the CLI (default: YAML-ish key/value dump). */
  human?: (out: z.infer<O>) => string;
  /** CLI exit code for a successful result (LSB-style: `<service> status` exits 3 when not running). Default 0. */
  exitCode?: (out: z.infer<O>) => number;
  /** Exposed on the CLI only (e.g. `logs -f`, `monitor`, `mcp`): not an MCP tool or control route. */
  cliOnly?: boolean;
  /** Internal plumbing (e.g. `serve`, `supervise`): runnable but left out of --help listings. */
  hidden?: boolean;
  run(input: z.infer<I>, ctx: OpContext): Promise<z.infer<O>>;
}

export function defineOp<I extends z.ZodType, O extends z.ZodType>(def: OpDef<I, O>): OpDef<I, O> {
  if (!/^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/.test(def.name)) throw new Error(`bad op name ${def.name}`);
  return def;
}

export class OpRegistry {
  readonly #ops = new Map<string, OpDef>();

  // biome-ignore lint/suspicious/noExplicitAny: ops of different input types; run() takes its input contravariantly, so only any unites them
  add(...defs: OpDef<any, any>[]): this {
    for (const d of defs) {
      if (this.#ops.has(d.name)) throw new Error(`duplicate op ${d.name}`);
      this.#ops.set(d.name, d as OpDef);
    }
    return this;
  }

  get(name: string): OpDef | undefined {
    return this.#ops.get(name);
  }

  list(): OpDef[] {
    return [...this.#ops.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}

/** `matrix.room.send` -> `matrix_room_send` (MCP tool names allow [a-zA-Z0-9_-]). */
export const toolName = (opName: string): string => opName.replace(/[.-]/g, "_");
