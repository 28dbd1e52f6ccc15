/** The `alerts` section: built-in alert rules the supervisor evaluates, and where notifications go. */
import { z } from "zod";

const webhookSchema = z
  .object({
    /** POST target for every notification (JSON); null: no webhook. */
    url: z.url().nullable().default(null),
    /** Per attempt. */
    timeoutMs: z.number().int().positive().default(5000),
    /** Further attempts after a failed one (1 s apart, doubling). */
    retries: z.number().int().nonnegative().default(3),
  })
  .strict();

export const alertsSchema = z
  .object({
    /** Evaluate the built-in rules in the supervisor. */
    enabled: z.boolean().default(true),
    /** How often the rules run. */
    intervalMs: z.number().int().positive().default(10000),
    /** A firing alert nobody acknowledged is sent again this often (0: never). */
    renotifyMs: z.number().int().nonnegative().default(3600000),
    /** service_down: a service failed, unhealthy or in backoff this long. */
    downAfterMs: z.number().int().nonnegative().default(30000),
    /** restart_loop: this many restarts within windowMs. */
    restartLoop: z
      .object({
        restarts: z.number().int().positive().default(3),
        windowMs: z.number().int().positive().default(600000),
      })
      .strict()
      .default({ restarts: 3, windowMs: 600000 }),
    /** disk_full: less free space than this on the runtime home's filesystem. */
    diskMinFreePercent: z.number().min(0).max(100).default(5),
    /** error_rate: share of 5xx answers among a service's requests over one interval (with at least minRequests). */
    errorRate: z
      .object({
        ratio: z.number().min(0).max(1).default(0.05),
        minRequests: z.number().int().positive().default(20),
      })
      .strict()
      .default({ ratio: 0.05, minRequests: 20 }),
    /** Matrix delivery: the service account posts notices to this room alias (created on first use). */
    matrix: z
      .object({
        enabled: z.boolean().default(true),
        /** Alias localpart: #<room>:<serverName>. */
        room: z
          .string()
          .regex(/^[a-z0-9._=-]+$/)
          .default("ami-alerts"),
        /** Users invited when the room is created, e.g. "@admin:example.org". */
        invite: z.array(z.string().regex(/^@[^:]+:.+$/)).default([]),
      })
      .strict()
      .default({ enabled: true, room: "ami-alerts", invite: [] }),
    webhook: webhookSchema.default({ url: null, timeoutMs: 5000, retries: 3 }),
  })
  .strict();

export type AlertsConfig = z.output<typeof alertsSchema>;
