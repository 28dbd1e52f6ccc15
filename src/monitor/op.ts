/** `ami-streams monitor [--once] [--json] [--interval MS]`: live refreshing view of every service. */
import { z } from "zod";
import { defineOp } from "../core/ops.ts";
import { Collector, type MonitorSnapshot, monitorSnapshotSchema } from "./collect.ts";
import { renderFrame } from "./render.ts";

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        r();
      },
      { once: true },
    );
  });

export const monitorOp = defineOp({
  name: "monitor",
  summary: "Live view of every service: state, uptime, CPU, RSS, restarts and key figures (q or Ctrl-C quits)",
  description: "--once prints a single frame and exits; with --json that frame is JSON for scripts.",
  input: z
    .object({
      once: z.boolean().default(false).describe("print one frame and exit"),
      interval: z.number().int().min(100).default(1000).describe("refresh interval in ms"),
    })
    .strict(),
  output: monitorSnapshotSchema,
  annotations: { readOnly: true, destructive: false, idempotent: true },
  cliOnly: true,
  human: (s) => renderFrame(s, false),
  async run({ once, interval }, ctx) {
    const c = new Collector();
    await c.prime(ctx);
    if (once) {
      // Two samples a short while apart give a CPU figure.
      await sleep(Math.min(interval, 250), ctx.signal);
      return c.snapshot(ctx);
    }
    const out = process.stdout;
    const quit = new AbortController();
    ctx.signal.addEventListener("abort", () => quit.abort(), { once: true });
    const stdin = process.stdin;
    if (stdin.isTTY) {
      stdin.setRawMode(true);
      stdin.resume();
      stdin.on("data", (b: Buffer) => {
        if (b.includes(0x71) || b.includes(0x03)) quit.abort(); // 'q' or Ctrl-C (raw mode has no SIGINT)
      });
    }
    if (out.isTTY) out.write("\x1b[?1049h\x1b[?25l");
    let last: MonitorSnapshot | undefined;
    try {
      while (!quit.signal.aborted) {
        last = await c.snapshot(ctx);
        out.write(out.isTTY ? `\x1b[H\x1b[2J${renderFrame(last, true)}\n(q to quit)` : `${renderFrame(last, false)}\n`);
        await sleep(interval, quit.signal);
      }
    } finally {
      if (out.isTTY) out.write("\x1b[?25h\x1b[?1049l");
      if (stdin.isTTY) {
        stdin.setRawMode(false);
        stdin.pause();
      }
    }
    return last ?? (await c.snapshot(ctx));
  },
});
