/**
 * Runs the test suite: unit tests (src/**\/*.test.ts) with node's default concurrency, then end-to-end tests
 * (test/**\/*.test.ts) one file at a time (they start real servers). Prints node's summary, forwards the exit code.
 * Flags: --unit (unit only), --e2e (e2e only); any other argument filters files by substring.
 */
import { spawnSync } from "node:child_process";
import { globSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
const args = process.argv.slice(2);
const only = (f: string) => args.includes(f);
const filters = args.filter((a) => !a.startsWith("--"));
const pick = (pattern: string) =>
  globSync(pattern, { cwd: root, exclude: (p) => p.includes("node_modules") })
    .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
    .sort();

function run(files: string[], concurrency?: number): number {
  if (files.length === 0) return 0;
  const flags = ["--test", "--test-reporter=spec"];
  if (concurrency) flags.push(`--test-concurrency=${concurrency}`);
  const r = spawnSync(process.execPath, [...flags, ...files], { cwd: root, stdio: "inherit" });
  return r.status ?? 1;
}

const unit = only("--e2e") ? [] : pick("src/**/*.test.ts");
const e2e = only("--unit") ? [] : pick("test/**/*.test.ts");
process.stderr.write(`running ${unit.length} unit and ${e2e.length} e2e test file(s) on node ${process.version}\n`);
const codes = [run(unit), run(e2e, 1)];
process.exit(codes.find((c) => c !== 0) ?? 0);
