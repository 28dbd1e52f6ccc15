/** Media bench plumbing: the media service child process, ffmpeg children, process-tree CPU, a test clip. */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cpuTicks } from "../matrix/lib.ts";

export class MediaChild {
  http = "";
  rtmp = "";
  srt = "";
  /** rtsp://host:port when media.rtsp is enabled in the config, else "". */
  rtsp = "";
  #proc: ChildProcess | null = null;
  #out = "";

  static async start(config: Record<string, unknown> = {}): Promise<MediaChild> {
    const s = new MediaChild();
    const entry = fileURLToPath(new URL("./media-child.ts", import.meta.url));
    // The supervisor's flags for service processes.
    const proc = spawn(process.execPath, ["--max-semi-space-size=1", entry], {
      env: {
        NODE_COMPILE_CACHE: join(tmpdir(), "node-compile-cache"),
        MALLOC_MMAP_THRESHOLD_: "131072",
        ...process.env,
        BENCH_MEDIA_CONFIG: JSON.stringify(config),
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    s.#proc = proc;
    const urls = await new Promise<{ http: string; rtmp: string; srt: string; rtsp: string }>((resolve, reject) => {
      proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
        s.#out += d;
        const m = /LISTENING (\{.*\})\n/.exec(s.#out);
        if (m) resolve(JSON.parse(m[1] as string));
      });
      proc.once("exit", (c) => reject(new Error(`media child exited (${c})`)));
    });
    s.http = urls.http;
    s.rtmp = urls.rtmp;
    s.srt = urls.srt;
    s.rtsp = urls.rtsp;
    return s;
  }

  /** The service's `process.memoryUsage()` (after a full GC when the child runs with --expose-gc). */
  async memory(): Promise<NodeJS.MemoryUsage> {
    const from = this.#out.length;
    this.#proc!.kill("SIGUSR2");
    return await waitFor("memory figures", async () => {
      const m = /MEMORY (\{.*\})\n/.exec(this.#out.slice(from));
      return m ? (JSON.parse(m[1] as string) as NodeJS.MemoryUsage) : undefined;
    });
  }

  get pid(): number {
    return this.#proc!.pid!;
  }

  async stop(): Promise<void> {
    const p = this.#proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    setTimeout(() => p.exitCode === null && p.kill("SIGKILL"), 5000).unref();
    await exited;
  }
}

/** ffmpeg as a child; `stop()` ends it (SIGTERM, then SIGKILL) and waits. */
export function ffmpeg(args: string[], stdio: "ignore" | "pipe" = "ignore") {
  const proc = spawn("ffmpeg", ["-hide_banner", "-nostdin", "-loglevel", "error", ...args], {
    stdio: [stdio, stdio, "inherit"],
  });
  const exit = new Promise<number | null>((r) => proc.once("close", r));
  return {
    proc,
    exit,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        setTimeout(() => proc.exitCode === null && proc.kill("SIGKILL"), 3000).unref();
      }
      await exit;
    },
  };
}

/** A process and all its descendants (from /proc/<pid>/task/<tid>/children). */
export function tree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i] as number;
    try {
      for (const t of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim();
        if (kids) for (const k of kids.split(" ")) out.push(Number(k));
      }
    } catch {}
  }
  return out;
}

/** CPU ticks of a process tree, per pid, so processes that come and go are counted only while seen. */
export function treeTicks(pid: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of tree(pid)) {
    try {
      m.set(p, cpuTicks(p));
    } catch {}
  }
  return m;
}

/** Cores used between two `treeTicks` snapshots over `seconds` (a process seen only at the end counts whole). */
export function treeCores(a: Map<number, number>, b: Map<number, number>, seconds: number): number {
  let ticks = 0;
  for (const [p, t] of b) ticks += t - (a.get(p) ?? 0);
  return ticks / 100 / seconds;
}

/**
 * The 1080p30 6 Mb/s H.264 + AAC clip (10 s, 1 s GOP), encoded once and cached in the temp directory.
 */
export async function clip1080p(): Promise<string> {
  const file = join(tmpdir(), "ami-bench-1080p30-6M.mp4");
  if (existsSync(file)) return file;
  const tmp = `${file}.part.mp4`;
  const f = ffmpeg([
    ...["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-f", "lavfi", "-i", "sine=frequency=440"],
    ...["-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "6M", "-maxrate", "6M", "-bufsize", "6M"],
    ...["-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p"],
    ...["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-y", tmp],
  ]);
  if ((await f.exit) !== 0) throw new Error("could not encode the bench clip");
  renameSync(tmp, file);
  return file;
}

/** Publish a file in a loop in real time, stream copy, to `url` (flv over RTMP). */
export const publishLoop = (file: string, url: string) =>
  ffmpeg(["-re", "-stream_loop", "-1", "-i", file, "-c", "copy", "-f", "flv", url]);

/** Poll until `fn` returns something truthy. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {}
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * nginx in the foreground with one worker (as our service is one process) on `body` (its http or rtmp blocks),
 * config and pid file under `root`; `stop()` quits it gracefully, then kills it.
 */
export function nginx(root: string, body: string, modules: string[] = []) {
  const conf = join(root, "nginx.conf");
  writeFileSync(
    conf,
    `${modules.map((m) => `load_module ${m};`).join("\n")}
daemon off;
worker_processes 1;
${process.getuid?.() === 0 ? "user root;" : ""}
pid ${root}/nginx.pid;
error_log ${root}/error.log;
events { worker_connections 2048; }
${body}
`,
  );
  const proc = spawn("nginx", ["-p", root, "-c", conf], { stdio: ["ignore", "ignore", "inherit"] });
  const exit = new Promise((r) => proc.once("close", r));
  return {
    pid: proc.pid as number,
    async stop() {
      proc.kill("SIGQUIT");
      setTimeout(() => proc.exitCode === null && proc.kill("SIGKILL"), 3000).unref();
      await exit;
    },
  };
}
