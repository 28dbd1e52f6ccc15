/**
 * Cron triggers: five-field expressions (minute hour day-of-month month day-of-week, UTC, as Workers Cron Triggers)
 * with `*`, lists, ranges and steps (`*\/5`, `1-5`, `0,30`). Day of month and day of week follow cron's rule: when
 * both are restricted, either matching is enough.
 */
import { AmiError } from "../core/errors.ts";

export interface Cron {
  source: string;
  minute: Set<number>;
  hour: Set<number>;
  dom: Set<number>;
  month: Set<number>;
  dow: Set<number>;
  domAny: boolean;
  dowAny: boolean;
}

const FIELDS = [
  ["minute", 0, 59],
  ["hour", 0, 23],
  ["day of month", 1, 31],
  ["month", 1, 12],
  ["day of week", 0, 7],
] as const;

function field(text: string, name: string, lo: number, hi: number, source: string): Set<number> {
  const out = new Set<number>();
  const bad = (why: string) => new AmiError("AMI_INVALID_INPUT", `cron '${source}': ${name} '${text}' ${why}`);
  for (const part of text.split(",")) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!m) throw bad(`is not *, N, N-M or a step (*/N)`);
    const from = m[1] === "*" ? lo : Number(m[2]);
    const to = m[1] === "*" ? hi : m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? hi : from;
    const step = m[4] !== undefined ? Number(m[4]) : 1;
    if (from < lo || to > hi || from > to) throw bad(`is outside ${lo}-${hi}`);
    if (step < 1) throw bad("has a step below 1");
    for (let v = from; v <= to; v += step) out.add(name === "day of week" && v === 7 ? 0 : v);
  }
  return out;
}

export function parseCron(source: string): Cron {
  const parts = source.trim().split(/\s+/);
  if (parts.length !== 5)
    throw new AmiError("AMI_INVALID_INPUT", `cron '${source}' must have 5 fields (minute hour day month weekday)`);
  const [minute, hour, dom, month, dow] = FIELDS.map(([name, lo, hi], i) => field(parts[i], name, lo, hi, source));
  return { source, minute, hour, dom, month, dow, domAny: parts[2] === "*", dowAny: parts[4] === "*" };
}

/** True when `c` fires in the UTC minute of `at`. */
export function cronMatches(c: Cron, at: Date): boolean {
  if (!c.minute.has(at.getUTCMinutes()) || !c.hour.has(at.getUTCHours()) || !c.month.has(at.getUTCMonth() + 1))
    return false;
  const dom = c.dom.has(at.getUTCDate());
  const dow = c.dow.has(at.getUTCDay());
  if (c.domAny && c.dowAny) return true;
  if (c.domAny) return dow;
  if (c.dowAny) return dom;
  return dom || dow;
}
