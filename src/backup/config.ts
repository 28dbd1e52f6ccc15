/** The `backup` section: where backups go, how often the `backup` service makes them, how many are kept. */
import { z } from "zod";
import { hostSchema as host, portSchema as port } from "../core/config.ts";

/** `30m`, `6h`, `1d`: the interval between scheduled backups. */
export const SCHEDULE_RE = /^([1-9]\d{0,5})(m|h|d)$/;

export function scheduleMs(s: string): number {
  const m = SCHEDULE_RE.exec(s);
  if (!m) throw new Error(`bad schedule ${s}`);
  return Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "m" | "h" | "d"];
}

export const backupSchema = z
  .object({
    /** Where `backup create` (and the schedule) writes backups; null: <home>/backups. */
    dir: z.string().min(1).nullable().default(null),
    /**
     * Scheduled backups: an interval such as `6h`, `1d`, `30m` (null: off). With a schedule, `up` starts the
     * `backup` service, which makes a backup whenever the newest one in `dir` is older than the interval.
     */
    schedule: z
      .string()
      .regex(SCHEDULE_RE, "must be an interval such as '30m', '6h' or '1d' (or null: off)")
      .nullable()
      .default(null),
    /** Backups kept in `dir` after a successful create (oldest removed first); 0 keeps all. */
    keep: z.number().int().nonnegative().default(7),
    /** Write one `.tar` file per backup instead of a directory. */
    tar: z.boolean().default(false),
    /** The `backup` service's listener (health and figures for the supervisor and the monitor). */
    host: host.default("127.0.0.1"),
    port: port.default(8479),
  })
  .strict();

export type BackupConfig = z.output<typeof backupSchema>;
