/**
 * Minimal structured logger: JSON lines to stderr (never stdout: stdout belongs to MCP stdio and --json). Every
 * line goes through scrubText (no tokens, passwords or stream keys in logs), and a failed write never takes the
 * process down: a log line is worth less than the service that writes it.
 */
import { scrubText } from "./redact.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

let stderrGuarded = false;
/**
 * stderr is a file or the supervisor's pipe: ENOSPC/EIO on a file, EPIPE once the supervisor is gone. Node reports
 * those as an 'error' event, fatal without a listener; dropping the line is the right answer for a log.
 */
export function guardStderr(): void {
  if (stderrGuarded) return;
  stderrGuarded = true;
  process.stderr.on("error", () => {});
}

const stderrWrite = (line: string) => {
  guardStderr();
  try {
    process.stderr.write(`${line}\n`);
  } catch {
    // a synchronous write to a full disk throws on some stream types: drop the line.
  }
};

export function createLogger(
  opts: { level?: LogLevel; base?: Record<string, unknown>; write?: (line: string) => void } = {},
): Logger {
  const level = opts.level ?? ((process.env.AMI_LOG_LEVEL as LogLevel) || "info");
  const write = opts.write ?? stderrWrite;
  const base = opts.base ?? {};
  const log = (l: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (order[l] < order[level]) return;
    write(scrubText(JSON.stringify({ t: new Date().toISOString(), level: l, msg, ...base, ...fields })));
  };
  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    child: (fields) => createLogger({ level, base: { ...base, ...fields }, write }),
  };
}

/** A logger that drops everything (tests, quiet CLI paths). */
export const silentLogger: Logger = createLogger({ write: () => {} });
