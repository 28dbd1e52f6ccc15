/** The `edge` section: serverless functions run by workerd, one process per function, limits enforced from outside. */
import { z } from "zod";
import { hostSchema as host, portSchema as port } from "../core/config.ts";

export const edgeSchema = z
  .object({
    /** Off by default: the edge service (and its workerd processes) only where functions are deployed. */
    enabled: z.boolean().default(false),
    /** Where the edge service listens: functions at /fn/<name>/..., its API at /_ami/edge/... */
    host: host.default("127.0.0.1"),
    port: port.default(8790),
    /** The workerd binary; null: the one from the npm package `workerd`. */
    workerd: z.string().min(1).nullable().default(null),
    /** Workers compatibility date given to every function. */
    compatibilityDate: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/, "must be YYYY-MM-DD")
      .default("2025-01-01"),
    /**
     * CPU time one invocation (a request or a scheduled() run, the waitUntil work it leaves running included) may use;
     * past it the function's workerd process is killed and restarted (ARCHITECTURE.md, Edge functions, "CPU limit").
     */
    cpuMsPerRequest: z.number().int().positive().default(50),
    /** Resident memory of one function's workerd process; past it the process is killed and restarted. */
    memoryMb: z.number().int().positive().default(256),
    /** Wall time for one request (waiting on bindings included) before it is answered 504. */
    requestTimeoutMs: z.number().int().positive().default(30_000),
    /** How often the watchdog samples each process's CPU time and RSS (/proc). */
    watchdogIntervalMs: z.number().int().min(5).default(20),
    /** The `ORIGIN` service binding: the base URL functions reach as env.ORIGIN.fetch(...); null: no binding. */
    origin: z
      .string()
      .url()
      .regex(/^http:\/\//, "must be an http:// URL")
      .nullable()
      .default(null),
    /** Largest module accepted by deploy. */
    maxModuleBytes: z
      .number()
      .int()
      .positive()
      .default(1024 * 1024),
    /** Largest KV value. */
    maxKvValueBytes: z
      .number()
      .int()
      .positive()
      .default(25 * 1024 * 1024),
    /**
     * workerd processes kept started and idle (no function yet): a deploy, a restart after a limit kill or the first
     * request after an idle stop loads the function into one (a few ms) instead of starting workerd (20-40 ms, more
     * under load); a process of its own then takes over in the background. Each idle process holds ~54 MB of RSS.
     * 0: no pool, every start is a process of the function's own (no worker loader: workerd marks it experimental).
     */
    poolSize: z.number().int().min(0).max(16).default(1),
    /** A function with no request for this long gives its process up (the next request claims a pooled one); 0: never. */
    idleStopMs: z.number().int().min(0).default(600_000),
    /** Versions kept per function (older ones are released to the CAS garbage collector). */
    keepVersions: z.number().int().min(2).default(10),
  })
  .strict();

export type EdgeConfig = z.output<typeof edgeSchema>;
