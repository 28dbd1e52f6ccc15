/** CLI output: human rendering, JSON, error reporting, exit codes and the TTY progress bar. */
import YAML from "yaml";
import type { AmiError } from "../core/errors.ts";
import type { OpDef } from "../core/ops.ts";

/** Exit codes scripts can rely on (also listed in `ami-streams --help`). */
export const Exit = { ok: 0, failed: 1, usage: 2, notRunning: 3, notBuilt: 4 } as const;

const usageCodes = new Set([
  "AMI_INVALID_INPUT",
  "AMI_INVALID_CONFIG",
  "M_INVALID_PARAM",
  "M_MISSING_PARAM",
  "M_BAD_JSON",
  "M_NOT_JSON",
]);

export function exitCodeFor(e: AmiError): number {
  if (usageCodes.has(e.code)) return Exit.usage;
  if (e.code === "AMI_NOT_RUNNING") return Exit.notRunning;
  if (e.code === "AMI_NOT_BUILT") return Exit.notBuilt;
  return Exit.failed;
}

export function renderHuman(op: OpDef, out: unknown): string {
  if (op.human) return op.human(out);
  if (out === undefined || out === null) return "";
  if (typeof out !== "object") return String(out);
  return YAML.stringify(out).trimEnd();
}

export function renderError(e: AmiError, json: boolean): { stdout?: string; stderr: string } {
  const stderr = `error: ${e.message}${e.code.startsWith("AMI_INVALID_INPUT") ? "" : ` [${e.code}]`}`;
  return json
    ? { stdout: JSON.stringify({ error: { code: e.code, message: e.message, ...e.extra } }, null, 2), stderr }
    : { stderr };
}

/** A one-line bar on stderr when it is a TTY; nothing otherwise (logs and pipes stay clean). */
export function progressBar(stream: NodeJS.WriteStream = process.stderr): {
  update: (done: number, total: number | undefined, message?: string) => void;
  clear: () => void;
} {
  let drawn = false;
  if (!stream.isTTY) return { update: () => {}, clear: () => {} };
  return {
    update(done, total, message) {
      const width = 24;
      let bar: string;
      if (total && total > 0) {
        const f = Math.max(0, Math.min(1, done / total));
        const n = Math.round(f * width);
        bar = `[${"#".repeat(n)}${"-".repeat(width - n)}] ${done}/${total}`;
      } else bar = `[${"-".repeat(width)}] ${done}`;
      const line = `${bar}${message ? ` ${message}` : ""}`.slice(0, (stream.columns || 80) - 1);
      stream.write(`\r\x1b[K${line}`);
      drawn = true;
    },
    clear() {
      if (drawn) stream.write("\r\x1b[K");
      drawn = false;
    },
  };
}
