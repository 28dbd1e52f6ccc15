/**
 * The chat client's Vite build. `npm ci` builds it (the `prepare` script); the web service checks again on
 * start and rebuilds when the output is missing or older than its sources, so a fresh clone, a `git pull` or
 * an edit never serves a stale or absent client. Builds go to a temporary directory and are swapped in whole.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const chatDir = join(repoRoot, "web", "chat");
export const chatDist = join(chatDir, "dist");

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

export type BuildState = "missing" | "stale" | "fresh";

export function chatBuildState(): BuildState {
  const index = join(chatDist, "index.html");
  if (!existsSync(index)) return "missing";
  const sources = ["src", "index.html", "vite.config.ts"].map((p) => join(chatDir, p));
  sources.push(join(repoRoot, "package-lock.json"));
  const newest = Math.max(...sources.filter((p) => existsSync(p)).map(newestMtime));
  return newest > statSync(index).mtimeMs ? "stale" : "fresh";
}

let building: Promise<void> | null = null;

/** Run `vite build` for web/chat (Node's own binary, so it works without a node on PATH). */
export function buildChat(log?: Logger): Promise<void> {
  building ??= runBuild(log).finally(() => {
    building = null;
  });
  return building;
}

async function runBuild(log?: Logger): Promise<void> {
  const vite = join(repoRoot, "node_modules", "vite", "bin", "vite.js");
  if (!existsSync(vite)) {
    throw new AmiError(
      "AMI_UNAVAILABLE",
      `the web client is not built and Vite is missing: run 'npm ci' in ${repoRoot}`,
    );
  }
  const tmp = `${chatDist}.tmp-${process.pid}`;
  log?.info("building the web client", { dir: chatDir });
  const out = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
    const p = spawn(process.execPath, [vite, "build", "--logLevel", "warn", "--outDir", tmp, chatDir], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    p.stdout.on("data", (d) => (text += d));
    p.stderr.on("data", (d) => (text += d));
    p.once("error", reject);
    p.once("exit", (code) => resolve({ code, text }));
  });
  if (out.code !== 0 || !existsSync(join(tmp, "index.html"))) {
    rmSync(tmp, { recursive: true, force: true });
    throw new AmiError("AMI_INTERNAL", `vite build of web/chat failed (exit ${out.code}):\n${out.text.slice(-4000)}`);
  }
  const old = `${chatDist}.old-${process.pid}`;
  if (existsSync(chatDist)) renameSync(chatDist, old);
  renameSync(tmp, chatDist);
  rmSync(old, { recursive: true, force: true });
  log?.info("web client built", { dir: chatDist });
}

/** Build unless the output is there and newer than every source. */
export async function ensureChatBuilt(log?: Logger): Promise<BuildState> {
  const state = chatBuildState();
  if (state !== "fresh") await buildChat(log);
  return state;
}
