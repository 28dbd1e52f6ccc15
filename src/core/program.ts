/**
 * An external program the supervisor runs like one of our services (coturn, workerd, Xvfb, OBS, or anything an
 * operator lists under `programs:`): argv, env, working dir, a health check, readiness, stop signal and grace,
 * restart policy. A feature module exports one with `defineProgram`; the config section uses `programSchema`.
 */
import { z } from "zod";
import type { Config } from "../config.ts";

const hostPort = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be "host:port", e.g. "127.0.0.1:3478"');

/** One of: TCP connect to host:port, HTTP GET expecting 2xx, or a command exiting 0 (argv, no shell). */
export const healthCheckSchema = z.union(
  [
    z.object({ tcp: hostPort }).strict(),
    z
      .object({
        http: z
          .string()
          .url()
          .regex(/^https?:\/\//, "must be an http:// or https:// URL"),
      })
      .strict(),
    z.object({ command: z.array(z.string().min(1)).min(1) }).strict(),
  ],
  { error: 'must be { tcp: "host:port" }, { http: "http://host:port/path" } or { command: [program, args...] }' },
);
export type HealthCheck = z.infer<typeof healthCheckSchema>;

export const restartPolicies = ["always", "on-failure", "never"] as const;
export type RestartPolicy = (typeof restartPolicies)[number];

export const stopSignals = ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL"] as const;

export const programSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** The program and its arguments; run directly, no shell (use ["sh", "-c", "..."] for one). */
    argv: z.array(z.string().min(1)).min(1),
    /** Added to the supervisor's environment; numbers and booleans become strings (`PORT: 8000`). */
    env: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).default({}),
    /** Working directory; relative paths are taken from the config file's directory. Null: the runtime home. */
    cwd: z.string().min(1).nullable().default(null),
    /** Null: the program counts as running once its process has lived 1 s. */
    health: healthCheckSchema.nullable().default(null),
    /** It must pass its health check within this many seconds of a start, or it is killed (and `up` fails). */
    readyTimeoutSeconds: z.number().positive().default(30),
    /** Sent to the program's process group to stop it; SIGKILL follows after stopGraceMs. */
    stopSignal: z.enum(stopSignals).default("SIGTERM"),
    stopGraceMs: z.number().int().positive().default(10000),
    /** always: restart whenever it exits; on-failure: unless it exited 0; never: leave it stopped (or failed). */
    restart: z.enum(restartPolicies).default("always"),
    /** A JSON endpoint of flat numbers shown as the monitor's key figures (null: none). */
    statsUrl: z.string().url().nullable().default(null),
  })
  .strict();
/** A program as written (defaults optional). */
export type ProgramInput = z.input<typeof programSchema>;
/** A program with every default filled in. */
export type ProgramSpec = z.output<typeof programSchema>;

/**
 * Names the CLI and the run files use whatever the features: a program may not take them (its name becomes
 * `ami-streams <name> start|stop|status|restart` and logs/<name>.log). Features' names, command words and services
 * are reserved too (src/config.ts).
 */
const reserved = new Set(["help", "supervisor"]);

export const programNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, "must be lowercase letters, digits and '-', starting with a letter")
  .refine((n) => !reserved.has(n), "is a built-in command or service name");

/** A program a feature module supervises; its spec may depend on the config (ports, paths). */
export interface ProgramDef {
  name: string;
  summary: string;
  enabled(config: Config): boolean;
  spec(config: Config): ProgramSpec;
  /** Lines to print after `up`. */
  describe?(config: Config): string[];
}

/** For feature modules: `export const turn = defineProgram({ name: "turn", summary, spec: (c) => ({ argv: [...] }) })`. */
export function defineProgram(d: {
  name: string;
  summary: string;
  enabled?: (config: Config) => boolean;
  spec: (config: Config) => ProgramInput;
  describe?: (config: Config) => string[];
}): ProgramDef {
  programNameSchema.parse(d.name);
  return {
    name: d.name,
    summary: d.summary,
    enabled: (c) => (d.enabled ? d.enabled(c) : d.spec(c).enabled !== false),
    spec: (c) => programSchema.parse(d.spec(c)),
    describe: d.describe,
  };
}
