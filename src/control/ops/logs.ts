/** `ami-streams logs <service> [-f] [-n N]`: print (and follow) a service's log file. */
import { createReadStream, existsSync, statSync, watch } from "node:fs";
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp } from "../../core/ops.ts";
import { SUPERVISOR } from "../client.ts";
import { tail } from "../daemon.ts";
import { units } from "../units.ts";

export const logsOp = defineOp({
  name: "logs",
  summary: "Print a service's log (the supervisor's with `supervisor`); -f follows it",
  input: z
    .object({
      service: z.string().describe("service name, or 'supervisor'"),
      follow: z.boolean().default(false).describe("keep printing new lines until interrupted"),
      lines: z.number().int().min(0).default(50).describe("how many of the last lines to print first"),
    })
    .strict(),
  output: z.object({ file: z.string(), lines: z.array(z.string()) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["service"],
  short: { f: "follow", n: "lines" },
  cliOnly: true,
  human: () => "",
  async run({ service, follow, lines }, ctx) {
    const all = units(ctx.config);
    if (service !== SUPERVISOR && !all.some((s) => s.name === service)) {
      const known = [...all.map((s) => s.name), SUPERVISOR].join(", ");
      throw new AmiError("AMI_INVALID_INPUT", `unknown service '${service}' (known: ${known})`);
    }
    const file = ctx.paths.logFile(service);
    const last = tail(file, lines);
    for (const l of last) ctx.print(l);
    if (follow) await followFile(file, (l) => ctx.print(l), ctx.signal);
    return { file, lines: last };
  },
});

/** Print lines appended to `file` until `signal` aborts; survives the file appearing later or being truncated. */
async function followFile(file: string, onLine: (l: string) => void, signal: AbortSignal): Promise<void> {
  let pos = existsSync(file) ? statSync(file).size : 0;
  let partial = "";
  let reading = false;
  const readMore = async () => {
    if (reading || !existsSync(file)) return;
    reading = true;
    const size = statSync(file).size;
    if (size < pos) pos = 0;
    if (size > pos) {
      for await (const chunk of createReadStream(file, { start: pos, end: size - 1, encoding: "utf8" })) {
        partial += chunk;
      }
      pos = size;
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      for (const p of parts) onLine(p);
    }
    reading = false;
  };
  // fs.watch misses events on some filesystems; a slow poll backs it up.
  const poll = setInterval(() => void readMore(), 500);
  let watcher: ReturnType<typeof watch> | undefined;
  try {
    watcher = watch(file, () => void readMore());
  } catch {}
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  clearInterval(poll);
  watcher?.close();
}
