/**
 * The media service's run-time changes (pulls, recordings, restream destinations) kept in a small JSON file,
 * `<data dir>/state.json`: saved whenever they change and restored when the service starts, so a crash or
 * `ami-streams media restart` keeps them. Saves go to a temporary file renamed over the old one, so a crash
 * mid-write leaves the previous state. An unreadable file is moved aside (`state.json.corrupt-<time>`) with a
 * clear log line, and the service starts empty rather than not at all.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import type { Logger } from "../core/logger.ts";
import { redactUrl, scrubText } from "../core/redact.ts";
import type { Pulls } from "./pulls.ts";
import type { Recordings } from "./recordings.ts";
import type { Restreams } from "./restreams.ts";

export const mediaStateSchema = z
  .object({
    version: z.literal(1),
    pulls: z.array(z.object({ path: z.string(), source: z.string() }).strict()),
    recordings: z.array(z.object({ path: z.string() }).strict()),
    restreams: z.array(z.object({ path: z.string(), to: z.string() }).strict()),
  })
  .strict();
export type MediaState = z.infer<typeof mediaStateSchema>;

export const emptyState = (): MediaState => ({ version: 1, pulls: [], recordings: [], restreams: [] });

export class StateFile {
  readonly file: string;
  readonly #log: Logger;

  constructor(file: string, log: Logger) {
    this.file = file;
    this.#log = log;
  }

  /** The saved state; empty when there is none yet or it cannot be read (the bad file is kept aside). */
  load(): MediaState {
    if (!existsSync(this.file)) return emptyState();
    let why: string;
    try {
      const parsed = mediaStateSchema.safeParse(JSON.parse(readFileSync(this.file, "utf8")));
      if (parsed.success) return parsed.data;
      why = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    } catch (e) {
      why = (e as Error).message;
    }
    const aside = `${this.file}.corrupt-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    try {
      renameSync(this.file, aside);
    } catch (e) {
      this.#log.error("media state: cannot move the unreadable file aside", { error: (e as Error).message });
    }
    this.#log.error(
      "media state file is unreadable: starting without saved pulls, recordings and restreams (the file is kept)",
      { file: this.file, keptAs: aside, error: why },
    );
    return emptyState();
  }

  /** Write `s` atomically. A failure is logged, not thrown: the change itself already happened in memory. */
  save(s: MediaState): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(this.file), { recursive: true });
      writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch (e) {
      // A half-written temp file (a full disk) is litter: the last good state file stays as it was.
      rmSync(tmp, { force: true });
      this.#log.error("media state: cannot save", { file: this.file, error: (e as Error).message });
    }
  }
}

export interface Runtime {
  pulls: Pulls;
  recordings: Recordings;
  restreams: Restreams;
}

/** What to save: the pulls, recordings and destinations as they were asked for (not their live status). */
export function snapshot(r: Runtime): MediaState {
  return {
    version: 1,
    // The real URLs (status and list show them redacted): restoring needs the credentials.
    pulls: r.pulls.saved(),
    recordings: r.recordings.list().map((x) => ({ path: x.path })),
    restreams: r.restreams.saved(),
  };
}

/** Start everything `s` lists again. One that cannot start (its source file is gone...) is logged and dropped. */
export function restore(s: MediaState, r: Runtime, log: Logger): number {
  let n = 0;
  const attempt = (what: string, fields: Record<string, string>, fn: () => unknown) => {
    try {
      fn();
      n++;
    } catch (e) {
      const shown = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, redactUrl(v)]));
      log.error(`media state: cannot restore a ${what}; dropped`, {
        ...shown,
        error: scrubText((e as Error).message),
      });
    }
  };
  for (const p of s.pulls) attempt("pull", p, () => r.pulls.start(p.source, p.path));
  for (const x of s.recordings) attempt("recording", x, () => r.recordings.start(x.path));
  for (const d of s.restreams) attempt("restream", d, () => r.restreams.add(d.path, d.to));
  if (n)
    log.info("media state restored", {
      pulls: s.pulls.length,
      recordings: s.recordings.length,
      restreams: s.restreams.length,
    });
  return n;
}
