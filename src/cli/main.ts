/** The `ami-streams` CLI: resolves a command from the op registry, parses flags, runs it, prints, exits. */

import { type Config, defaultConfig, loadConfig, resolveConfigPath } from "../config.ts";
import { makeContext } from "../control/context.ts";
import { loadRegistry } from "../control/registry.ts";
import { peekConfig } from "../control/units.ts";
import { AmiError, isAmiError } from "../core/errors.ts";
import type { OpDef, OpRegistry } from "../core/ops.ts";
import { features } from "../features.ts";
import { groupHelp, opHelp } from "./help.ts";
import { Exit, exitCodeFor, progressBar, renderError, renderHuman } from "./output.ts";
import { parseOpArgs, validateOpArgs } from "./parse.ts";

interface Globals {
  json: boolean;
  help: boolean;
  config?: string;
  rest: string[];
}

function takeGlobals(argv: string[]): Globals {
  const g: Globals = { json: false, help: false, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      g.rest.push(...argv.slice(i));
      break;
    }
    if (a === "--json") g.json = true;
    else if (a === "--help" || a === "-h") g.help = true;
    else if (a === "--config") {
      if (i + 1 >= argv.length) throw new AmiError("AMI_INVALID_INPUT", "--config: missing value");
      g.config = argv[++i];
    } else if (a.startsWith("--config=")) g.config = a.slice("--config=".length);
    else g.rest.push(a);
  }
  return g;
}

/** Longest run of leading words naming an op; otherwise the longest group prefix. */
function resolve(registry: OpRegistry, rest: string[]): { op?: OpDef; words: string[]; args: string[] } {
  const words: string[] = [];
  for (const a of rest) {
    if (a.startsWith("-")) break;
    words.push(a);
  }
  for (let n = words.length; n > 0; n--) {
    const op = registry.get(words.slice(0, n).join("."));
    if (op) return { op, words: words.slice(0, n), args: rest.slice(n) };
  }
  const names = registry.list().map((o) => o.name.split("."));
  let n = 0;
  while (n < words.length && names.some((p) => p.length > n + 1 && words.slice(0, n + 1).every((w, i) => p[i] === w)))
    n++;
  return { words: words.slice(0, n), args: rest.slice(n) };
}

/** Config commands must work on a broken config (that is what they are for). */
const tolerant = (op: OpDef) =>
  op.name.startsWith("config.") || op.name.startsWith("matrix.config.") || op.name === "version";

function loadFor(op: OpDef, explicit: string | undefined): { config: Config; path: string | undefined } {
  try {
    return loadConfig(explicit);
  } catch (e) {
    if (tolerant(op) && isAmiError(e) && e.code === "AMI_INVALID_CONFIG") {
      return { config: defaultConfig(), path: resolveConfigPath(explicit) };
    }
    throw e;
  }
}

export async function main(argv: string[]): Promise<number> {
  let json = argv.includes("--json");
  const out = (s: string) => s && process.stdout.write(s.endsWith("\n") ? s : `${s}\n`);
  const err = (s: string) => s && process.stderr.write(s.endsWith("\n") ? s : `${s}\n`);
  const bar = progressBar();
  try {
    const g = takeGlobals(argv);
    json = g.json;
    // Programs in the config file become commands too (`ami-streams <program> start`). A command of one feature
    // loads only that feature's ops.
    const first = g.rest.find((a) => !a.startsWith("-"));
    const owner = features.find((f) => f.name === first || (first && f.commands.includes(first)));
    const registry = await loadRegistry(peekConfig(g.config), owner ? [owner.name] : undefined);
    const { op, words, args } = resolve(registry, g.rest);
    if (!op) {
      const unknown = g.rest.find((a, i) => i >= words.length && !a.startsWith("-"));
      if (g.help && !unknown) {
        out(groupHelp(registry, words));
        return Exit.ok;
      }
      err(groupHelp(registry, words));
      err(unknown ? `\nerror: unknown command '${[...words, unknown].join(" ")}'` : "\nerror: missing command");
      return Exit.usage;
    }
    if (g.help) {
      out(opHelp(op));
      return Exit.ok;
    }
    const input = validateOpArgs(op, parseOpArgs(op, args));
    const { config, path } = loadFor(op, g.config);
    const controller = new AbortController();
    let interrupts = 0;
    process.on("SIGINT", () => {
      if (++interrupts > 1) process.exit(130);
      controller.abort();
    });
    const ctx = makeContext({
      config,
      configPath: path,
      progress: (d, t, m) => bar.update(d, t, m),
      print: (line) => {
        bar.clear();
        (json ? err : out)(line);
      },
      interactive: Boolean(process.stdin.isTTY && process.stdout.isTTY),
      signal: controller.signal,
    });
    const result = await op.run(input as never, ctx);
    bar.clear();
    if (json) out(JSON.stringify(result ?? null, null, 2));
    else out(renderHuman(op, result));
    return op.exitCode?.(result) ?? Exit.ok;
  } catch (e) {
    bar.clear();
    if (isAmiError(e)) {
      const r = renderError(e, json);
      if (r.stdout) out(r.stdout);
      err(r.stderr);
      return exitCodeFor(e);
    }
    err(`internal error: ${(e as Error)?.stack ?? String(e)}`);
    if (json) out(JSON.stringify({ error: { code: "AMI_INTERNAL", message: String((e as Error)?.message ?? e) } }));
    return Exit.failed;
  }
}
