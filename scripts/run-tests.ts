/**
 * Runs the test suite: unit tests (src/**\/*.test.ts) at least two files at a time, then end-to-end tests
 * (test/**\/*.test.ts) one file at a time (they start real servers). Prints node's summary, forwards the exit code.
 * Flags: --unit (unit only), --e2e (e2e only); any other argument filters files by substring.
 */
import { spawnSync } from "node:child_process";
import { globSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
const args = process.argv.slice(2);
const only = (f: string) => args.includes(f);
const filters = args.filter((a) => !a.startsWith("--"));
const pick = (pattern: string) =>
  globSync(pattern, { cwd: root, exclude: (p) => p.includes("node_modules") })
    .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
    .sort();

const totals = { pass: 0, fail: 0, skipped: 0 };
const tapDir = mkdtempSync(join(tmpdir(), "ami-tests-"));
// Tests never touch the user's runtime home or config, even when the README's AMI_STREAMS_HOME is exported.
const testEnv: NodeJS.ProcessEnv = { ...process.env, AMI_STREAMS_HOME: join(tapDir, "home") };
delete testEnv.AMI_STREAMS_CONFIG;

function run(files: string[], concurrency?: number): number {
  if (files.length === 0) return 0;
  // spec for people on stdout; TAP to a file so the two runs can be added up into one closing line.
  const tap = join(tapDir, `run-${files.length}-${concurrency ?? 0}.tap`);
  const flags = ["--test", "--test-reporter=spec", "--test-reporter-destination=stdout"];
  flags.push("--test-reporter=tap", `--test-reporter-destination=${tap}`);
  if (concurrency) flags.push(`--test-concurrency=${concurrency}`);
  const r = spawnSync(process.execPath, [...flags, ...files], { cwd: root, stdio: "inherit", env: testEnv });
  let text = "";
  try {
    text = readFileSync(tap, "utf8");
  } catch {}
  const count = (k: string) => Number(new RegExp(`^# ${k} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
  totals.pass += count("pass");
  totals.fail += count("fail") + count("cancelled");
  totals.skipped += count("skipped") + count("todo");
  return r.status ?? 1;
}

const unit = only("--e2e") ? [] : pick("src/**/*.test.ts");
const e2e = only("--unit") ? [] : pick("test/**/*.test.ts");
process.stderr.write(`running ${unit.length} unit and ${e2e.length} e2e test file(s) on node ${process.version}\n`);
// Unit files at least two at a time (node's default is one fewer than the cores: one on a 2-core machine, where the
// PostgreSQL store and DHT simulation files alone would then take most of the run).
const codes = [run(unit, Math.max(2, availableParallelism() - 1)), run(e2e, 1)];
rmSync(tapDir, { recursive: true, force: true });
const code = codes.find((c) => c !== 0) ?? 0;
// One closing line over both runs; a run that crashed without a count still fails the total.
if (code !== 0 && totals.fail === 0) totals.fail = 1;
process.stdout.write(`\ntests: ${totals.pass} passed, ${totals.fail} failed, ${totals.skipped} skipped\n`);
process.exit(code);
