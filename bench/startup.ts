/**
 * Startup and idle cost of the CLI and the services, through the launcher users run (bin/ami-streams.mjs, compile
 * cache on): `ami-streams --help`, `version`, `config validate` (median of 9 runs), `up` until every service is
 * healthy (after a first up/down that fills the cache), and each service's resident memory after 5 s idle. Baselines in the
 * same run: `node -e 0`, and the same figures for an earlier commit (`--before <git ref>`, built as a temporary
 * worktree beside this one) so a change can be judged before/after on the same machine at the same time.
 * `node bench/startup.ts [--before <ref>]` (or `npm run bench startup`).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../src/test/cli.ts";
import { type BenchResult, mb, percentile, round, rssOf, runIfMain } from "./matrix/lib.ts";

const root = fileURLToPath(new URL("../", import.meta.url));

/** Median wall time of each command line, the lines taking turns (so a busy moment hits them all alike). */
function medians(lines: string[][], env: NodeJS.ProcessEnv, n = 9): number[] {
  const xs = lines.map((): number[] => []);
  for (let i = 0; i < n; i++) {
    for (const [j, argv] of lines.entries()) {
      const t = performance.now();
      const r = spawnSync(process.execPath, argv, { env, stdio: "ignore" });
      if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}`);
      xs[j].push(performance.now() - t);
    }
  }
  return xs.map((x) => round(percentile(x, 50), 0));
}

const commands = [["--help"], ["version"], ["config", "validate"]];

function cliRows(trees: { dir: string; label: string }[], env: NodeJS.ProcessEnv): BenchResult[] {
  const lines = [
    ["-e", "0"],
    ...trees.flatMap((t) => commands.map((c) => [join(t.dir, "bin", "ami-streams.mjs"), ...c])),
  ];
  const [node0, ...ms] = medians(lines, env);
  return trees.flatMap((t, i) =>
    commands.map((c, j) => ({
      bench: "startup",
      metric: `ami-streams ${c.join(" ")} (${t.label})`,
      value: ms[i * commands.length + j],
      unit: "ms",
      baseline: `node -e 0: ${node0} ms`,
      target: "",
      met: null,
    })),
  );
}

async function upRows(tree: string, label: string): Promise<BenchResult[]> {
  // The launcher users run (bin/ami-streams picks node and starts this): it turns on the compile cache.
  const bin = join(tree, "bin", "ami-streams.mjs");
  const home = mkdtempSync(join(tmpdir(), "ami-startup-"));
  const config = {
    control: { port: 0 },
    matrix: { port: await freePort() },
    web: { port: await freePort() },
    media: {
      httpPort: await freePort(),
      rtmpPort: await freePort(),
      srtPort: await freePort(),
      rtsp: { port: await freePort() },
    },
  };
  writeFileSync(join(home, "config.yaml"), JSON.stringify(config));
  const env: NodeJS.ProcessEnv = { ...process.env, AMI_STREAMS_HOME: home };
  delete env.AMI_STREAMS_CONFIG;
  delete env.AMI_STREAMS_FEATURES;
  const row = (metric: string, value: number, unit: string, baseline: string): BenchResult => ({
    bench: "startup",
    metric: `${metric} (${label})`,
    value,
    unit,
    baseline,
    target: "",
    met: null,
  });
  const rows: BenchResult[] = [];
  try {
    // A first up/down fills the compile cache for this tree, as any install's first start does; then measured.
    if (spawnSync(process.execPath, [bin, "up"], { env }).status !== 0) throw new Error("warm-up up failed");
    spawnSync(process.execPath, [bin, "down"], { env });
    const t = performance.now();
    const up = spawnSync(process.execPath, [bin, "up"], { env, encoding: "utf8" });
    if (up.status !== 0) throw new Error(`up failed: ${up.stderr}`);
    rows.push(row("up until healthy", round(performance.now() - t, 0), "ms", "matrix + web + media"));
    await new Promise((r) => setTimeout(r, 5000));
    const st = JSON.parse(execFileSync(process.execPath, [bin, "status", "--json"], { env, encoding: "utf8" }));
    for (const s of st.services as { name: string; pid: number }[]) {
      if (s.pid) rows.push(row(`idle RSS ${s.name}`, mb(rssOf(s.pid)), "MB", "after 5 s idle"));
    }
  } finally {
    spawnSync(process.execPath, [bin, "down"], { env });
    rmSync(home, { recursive: true, force: true });
  }
  return rows;
}

/** A worktree of `ref` beside the repo, sharing node_modules and the built web client. */
function worktreeOf(ref: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "ami-before-"));
  rmSync(dir, { recursive: true });
  execFileSync("git", ["-C", root, "worktree", "add", "--detach", dir, ref], { stdio: "ignore" });
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  const dist = join(root, "web", "chat", "dist");
  if (existsSync(dist)) cpSync(dist, join(dir, "web", "chat", "dist"), { recursive: true });
  return {
    dir,
    remove: () => execFileSync("git", ["-C", root, "worktree", "remove", "--force", dir], { stdio: "ignore" }),
  };
}

export async function run(before = argAfter("--before")): Promise<BenchResult[]> {
  const head = readFileSync(join(root, ".git", "HEAD"), "utf8")
    .trim()
    .replace(/^ref: refs\/heads\//, "");
  const wt = before ? worktreeOf(before) : undefined;
  const trees = [...(wt ? [{ dir: wt.dir, label: `before: ${before}` }] : []), { dir: root, label: `now: ${head}` }];
  const env: NodeJS.ProcessEnv = { ...process.env, AMI_STREAMS_HOME: mkdtempSync(join(tmpdir(), "ami-startup-")) };
  delete env.AMI_STREAMS_CONFIG;
  delete env.AMI_STREAMS_FEATURES;
  try {
    const rows = cliRows(trees, env);
    for (const t of trees) rows.push(...(await upRows(t.dir, t.label)));
    return rows;
  } finally {
    wt?.remove();
    rmSync(env.AMI_STREAMS_HOME as string, { recursive: true, force: true });
  }
}

function argAfter(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

await runIfMain(import.meta, () => run());
