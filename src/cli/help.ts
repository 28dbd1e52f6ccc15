/** --help text generated from the registry: op summary/description/schema, and command-group listings. */

import type { OpDef, OpRegistry } from "../core/ops.ts";
import { findFeature } from "../features.ts";
import { fieldsOf } from "./schema.ts";

export const EXIT_CODES = [
  "  0  ok",
  "  1  the operation failed",
  "  2  usage or validation error (bad flags, invalid config)",
  "  3  service not running (also `<service> status` when it is stopped)",
  "  4  capability not built yet",
];

const GLOBAL = [
  "  --json           print the result as JSON on stdout",
  "  --config FILE    config file (else $AMI_STREAMS_CONFIG, <home>/config.yaml)",
  "  -h, --help       show help",
];

export function opHelp(op: OpDef): string {
  const words = op.name.split(".").join(" ");
  const fields = fieldsOf(op.input);
  const pos = (op.positional ?? []).map((k) => {
    const f = fields.find((x) => x.key === k);
    return f?.kind === "array" ? `[${f.flag}...]` : f?.required ? `<${f?.flag}>` : `[${f?.flag}]`;
  });
  const shortOf = (key: string) => Object.entries(op.short ?? {}).find(([, v]) => v === key)?.[0];
  const rows = fields.map((f) => {
    const s = shortOf(f.key);
    let flag =
      f.kind === "boolean"
        ? `--${f.flag}, --no-${f.flag}`
        : `--${f.flag} ${f.kind === "number" ? "N" : f.choices ? f.choices.join("|") : "VALUE"}`;
    if (s) flag = `-${s}, ${flag}`;
    if (f.kind === "array") flag += " (repeatable)";
    const notes = [
      f.description ?? "",
      f.required ? "(required)" : "",
      f.default !== undefined && f.default !== false && !(Array.isArray(f.default) && f.default.length === 0)
        ? `(default: ${JSON.stringify(f.default)})`
        : "",
    ]
      .filter(Boolean)
      .join(" ");
    return [flag, notes] as const;
  });
  const w = Math.max(16, ...rows.map(([f]) => f.length));
  const a = op.annotations;
  const traits = [
    a.readOnly ? "read-only" : "changes state",
    a.destructive ? "destructive" : "",
    a.idempotent ? "idempotent" : "",
    op.cliOnly ? "CLI only" : `MCP tool ${op.name.replace(/[.-]/g, "_")}`,
  ].filter(Boolean);
  return [
    `Usage: ami-streams ${words}${rows.length ? " [options]" : ""}${pos.length ? ` ${pos.join(" ")}` : ""}`,
    "",
    op.summary,
    ...(op.description ? ["", op.description] : []),
    "",
    ...(rows.length ? ["Options:", ...rows.map(([f, n]) => `  ${f.padEnd(w)}  ${n}`.trimEnd()), ""] : []),
    "Global options:",
    ...GLOBAL,
    "",
    `(${traits.join(", ")})`,
  ].join("\n");
}

/** Listing for `ami-streams [group...] --help`: the direct subcommands under a prefix. */
export function groupHelp(registry: OpRegistry, prefix: string[]): string {
  const ops = registry.list().filter((o) => !o.hidden);
  const below = ops.filter((o) => {
    const p = o.name.split(".");
    return p.length > prefix.length && prefix.every((w, i) => p[i] === w);
  });
  const entries = new Map<string, string>();
  for (const o of below) {
    const p = o.name.split(".");
    const word = p[prefix.length];
    if (p.length === prefix.length + 1) entries.set(word, o.summary);
    else if (!entries.has(word))
      entries.set(
        word,
        (!prefix.length && findFeature(word)?.summary) || `${p.slice(0, prefix.length + 1).join(" ")} commands`,
      );
  }
  const w = Math.max(...[...entries.keys()].map((k) => k.length), 8);
  const lines = [...entries].map(([k, s]) => `  ${k.padEnd(w)}  ${s}`);
  const head = prefix.length ? `ami-streams ${prefix.join(" ")} <command>` : "ami-streams <command> [options]";
  return [
    `Usage: ${head}`,
    ...(prefix.length ? [] : ["", "The ami-streams control plane: services, supervisor, MCP server, monitor, config."]),
    "",
    "Commands:",
    ...lines,
    "",
    "Global options:",
    ...GLOBAL,
    "",
    "Exit codes:",
    ...EXIT_CODES,
    "",
    `Run 'ami-streams ${prefix.length ? `${prefix.join(" ")} ` : ""}<command> --help' for a command's options.`,
  ].join("\n");
}
