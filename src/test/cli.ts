/**
 * Helpers for tests that drive the real CLI: a throwaway AMI_STREAMS_HOME with a config file, free ports,
 * running `bin/ami-streams` (and the shell functions) as child processes, and tearing everything down.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const binEntry = join(repoRoot, "bin", "ami-streams.mjs");
export const binWrapper = join(repoRoot, "bin", "ami-streams");
/** The `testsvc` feature (http-service.ts), added to the supervisor's features through $AMI_STREAMS_FEATURES. */
export const testFeaturePath = join(repoRoot, "src", "test", "http-service.ts");
export const setupShell = join(repoRoot, "scripts", "setup-shell.sh");

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export interface TempHome {
  home: string;
  configFile: string;
  env: NodeJS.ProcessEnv;
  /** `down` (stops anything a test left running), then delete the directory. */
  cleanup(): Promise<void>;
}

/** A fresh runtime home with `config` written to <home>/config.yaml; `env` points the CLI at it. */
export function tempHome(config: Record<string, unknown> = {}, extraEnv: NodeJS.ProcessEnv = {}): TempHome {
  const home = mkdtempSync(join(tmpdir(), "ami-home-"));
  const configFile = join(home, "config.yaml");
  writeFileSync(configFile, YAML.stringify(config));
  const env: NodeJS.ProcessEnv = { ...process.env, AMI_STREAMS_HOME: home, AMI_STREAMS_CONFIG: "", ...extraEnv };
  delete env.AMI_STREAMS_CONFIG;
  return {
    home,
    configFile,
    env,
    async cleanup() {
      await cli(["down"], { env });
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** A home whose only service is the small test HTTP service (src/test/http-service.ts): no homeserver needed. */
export async function testServiceHome(
  config: Record<string, unknown> = {},
): Promise<TempHome & { servicePort: number }> {
  const servicePort = await freePort();
  const h = tempHome(
    {
      ...config,
      matrix: { enabled: false },
      media: { enabled: false },
      control: { port: 0, backoff: { initialMs: 100 }, ...(config.control as object) },
    },
    { AMI_STREAMS_TEST_SERVICE_PORT: String(servicePort), AMI_STREAMS_FEATURES: testFeaturePath },
  );
  return { ...h, servicePort };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd ?? repoRoot,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** Run `ami-streams <args>` through the shell wrapper (so the wrapper's Node selection is exercised too). */
export const cli = (
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {},
) => run(binWrapper, args, opts);

/** Run `script` in bash after sourcing scripts/setup-shell.sh (aliases expanded), e.g. `amatst; echo $?`. */
export const shell = (script: string, opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}) =>
  run("bash", ["-c", `shopt -s expand_aliases\nsource '${setupShell}'\n${script}`], opts);

/** Parse the JSON a `--json` command printed on stdout. */
export function json<T = any>(r: RunResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

/** Poll `check` until it returns a truthy value (no wall-clock assertions: only a generous give-up). */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  giveUpMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + giveUpMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
