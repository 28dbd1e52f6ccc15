/**
 * A strict parser of the Prometheus text exposition format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats):
 * `# HELP` / `# TYPE` lines, samples `name{label="value",...} value [timestamp]`, one family's samples together,
 * TYPE before its samples and at most once, label values with only the \\ \" \n escapes, values as Go floats
 * (NaN, +Inf, -Inf). Used by the supervisor's alert rules (error rates) and by the tests that check our exposition.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}
export interface Family {
  name: string;
  type: MetricType;
  help?: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

export class PromParseError extends Error {
  constructor(line: number, msg: string) {
    super(`line ${line}: ${msg}`);
  }
}

function parseValue(s: string, line: number): number {
  if (s === "NaN") return Number.NaN;
  if (s === "+Inf" || s === "Inf") return Number.POSITIVE_INFINITY;
  if (s === "-Inf") return Number.NEGATIVE_INFINITY;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new PromParseError(line, `bad value '${s}'`);
  return Number(s);
}

/** The family a sample belongs to: histogram/summary samples carry _bucket/_sum/_count suffixes. */
function familyOf(sample: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(sample);
  if (direct) return direct;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sample.endsWith(suffix)) continue;
    const f = families.get(sample.slice(0, -suffix.length));
    if (f && (f.type === "histogram" || (f.type === "summary" && suffix !== "_bucket"))) return f;
  }
  return undefined;
}

export function parsePrometheusText(text: string): Family[] {
  if (text.length > 0 && !text.endsWith("\n")) throw new PromParseError(0, "the exposition must end with a newline");
  const families = new Map<string, Family>();
  const order: Family[] = [];
  const closed = new Set<string>();
  let current: Family | undefined;
  const lines = text.split("\n");
  lines.pop();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) {
      f = { name, type: "untyped", samples: [] };
      families.set(name, f);
      order.push(f);
    }
    return f;
  };
  lines.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.replace(/^[ \t]+/, "");
    if (line === "") return;
    if (line.startsWith("#")) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) return; // any other comment is ignored
      const [, kind, name, rest = ""] = m;
      if (!NAME.test(name) || NAME.exec(name)?.[0] !== name) throw new PromParseError(n, `bad metric name '${name}'`);
      if (closed.has(name)) throw new PromParseError(n, `${kind} for '${name}' after its samples ended`);
      const f = family(name);
      if (kind === "HELP") {
        if (f.help !== undefined) throw new PromParseError(n, `second HELP for '${name}'`);
        f.help = rest.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      } else {
        if (!TYPES.has(rest.trim())) throw new PromParseError(n, `bad type '${rest}' for '${name}'`);
        if (f.samples.length > 0) throw new PromParseError(n, `TYPE for '${name}' after its samples`);
        if (f.type !== "untyped" || (f as { typed?: boolean }).typed)
          throw new PromParseError(n, `second TYPE for '${name}'`);
        f.type = rest.trim() as MetricType;
        (f as { typed?: boolean }).typed = true;
      }
      if (current && current !== f) closed.add(current.name);
      current = f;
      return;
    }
    const nm = NAME.exec(line);
    if (!nm) throw new PromParseError(n, `bad sample line '${raw}'`);
    const name = nm[0];
    let p = name.length;
    const labels: Record<string, string> = {};
    if (line[p] === "{") {
      p++;
      for (;;) {
        while (line[p] === " " || line[p] === "\t") p++;
        if (line[p] === "}") {
          p++;
          break;
        }
        const lm = LABEL.exec(line.slice(p));
        if (!lm) throw new PromParseError(n, `bad label name at column ${p + 1}`);
        const lname = lm[0];
        p += lname.length;
        while (line[p] === " " || line[p] === "\t") p++;
        if (line[p] !== "=") throw new PromParseError(n, `expected '=' after label ${lname}`);
        p++;
        while (line[p] === " " || line[p] === "\t") p++;
        if (line[p] !== '"') throw new PromParseError(n, `label ${lname}: value must be quoted`);
        p++;
        let v = "";
        for (;;) {
          const c = line[p];
          if (c === undefined) throw new PromParseError(n, `label ${lname}: unterminated value`);
          p++;
          if (c === '"') break;
          if (c === "\\") {
            const e = line[p++];
            if (e === "\\") v += "\\";
            else if (e === '"') v += '"';
            else if (e === "n") v += "\n";
            else throw new PromParseError(n, `label ${lname}: bad escape '\\${e ?? ""}'`);
          } else v += c;
        }
        if (lname in labels) throw new PromParseError(n, `label ${lname} given twice`);
        labels[lname] = v;
        while (line[p] === " " || line[p] === "\t") p++;
        if (line[p] === ",") p++;
        else if (line[p] !== "}") throw new PromParseError(n, `expected ',' or '}' after label ${lname}`);
      }
    }
    const rest = line.slice(p);
    if (!/^[ \t]/.test(rest)) throw new PromParseError(n, `expected a space before the value of '${name}'`);
    const parts = rest.trim().split(/[ \t]+/);
    if (parts.length > 2) throw new PromParseError(n, `trailing text after the value of '${name}'`);
    const value = parseValue(parts[0], n);
    let timestampMs: number | undefined;
    if (parts[1] !== undefined) {
      if (!/^-?\d+$/.test(parts[1])) throw new PromParseError(n, `bad timestamp '${parts[1]}'`);
      timestampMs = Number(parts[1]);
    }
    let f = familyOf(name, families);
    if (!f) f = family(name);
    if (closed.has(f.name)) throw new PromParseError(n, `samples of '${f.name}' are not together`);
    if (current && current !== f) closed.add(current.name);
    current = f;
    if (f.type === "histogram" && name.endsWith("_bucket") && !("le" in labels))
      throw new PromParseError(n, `histogram bucket '${name}' without an 'le' label`);
    const key = JSON.stringify([name, Object.entries(labels).sort()]);
    if (f.samples.some((s) => JSON.stringify([s.name, Object.entries(s.labels).sort()]) === key))
      throw new PromParseError(n, `duplicate sample ${name}${JSON.stringify(labels)}`);
    f.samples.push({ name, labels, value, ...(timestampMs === undefined ? {} : { timestampMs }) });
  });
  for (const f of order) delete (f as { typed?: boolean }).typed;
  return order;
}

/** Sum of a family's samples whose labels match `where` (a RegExp or exact string per label). */
export function sumSamples(
  families: Family[],
  name: string,
  where: Record<string, RegExp | string> = {},
): number | undefined {
  const f = families.find((x) => x.name === name);
  if (!f) return undefined;
  let total = 0;
  for (const s of f.samples) {
    if (s.name !== name) continue;
    const ok = Object.entries(where).every(([k, m]) =>
      typeof m === "string" ? s.labels[k] === m : m.test(s.labels[k] ?? ""),
    );
    if (ok) total += s.value;
  }
  return total;
}
