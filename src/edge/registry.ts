/**
 * Deployed functions and their versions, in one JSON file (<data>/edge/functions.json, replaced atomically). The
 * code itself is in the content-addressed store, held per version (`edge:<name>:v<n>`), so `edge rollback` needs
 * nothing but a pointer change and old versions survive until they fall out of `keepVersions`.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface FunctionVersion {
  version: number;
  /** CAS object id of the module. */
  id: string;
  sha256: string;
  size: number;
  route: string | null;
  region: string | null;
  /** Plain-text vars in the function's env (shown by `edge list`); absent in records from before they existed. */
  vars?: Record<string, string>;
  /** Cron triggers (UTC) running the module's scheduled() handler. */
  crons?: string[];
  deployedAt: string;
}

export interface FunctionRecord {
  name: string;
  versions: FunctionVersion[];
  /** The version serving requests. */
  active: number;
}

export const FUNCTION_NAME = /^[a-z][a-z0-9-]{0,62}$/;

export class FunctionRegistry {
  readonly #file: string;
  #fns: Record<string, FunctionRecord>;

  constructor(dir: string) {
    this.#file = join(dir, "functions.json");
    try {
      this.#fns = JSON.parse(readFileSync(this.#file, "utf8")) as Record<string, FunctionRecord>;
    } catch {
      this.#fns = {};
    }
  }

  get(name: string): FunctionRecord | undefined {
    return Object.hasOwn(this.#fns, name) ? this.#fns[name] : undefined;
  }

  list(): FunctionRecord[] {
    return Object.values(this.#fns).sort((a, b) => a.name.localeCompare(b.name));
  }

  active(name: string): FunctionVersion | undefined {
    const f = this.get(name);
    return f?.versions.find((v) => v.version === f.active);
  }

  put(rec: FunctionRecord): void {
    this.#fns[rec.name] = rec;
    this.#save();
  }

  remove(name: string): void {
    delete this.#fns[name];
    this.#save();
  }

  #save(): void {
    save(this.#file, this.#fns);
  }
}

function save(file: string, data: unknown): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(data, null, 1), { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * Secrets per function (<data>/edge/secrets.json, mode 0600): in the function's env like vars, kept across deploys
 * and rollbacks (as Workers secrets), never in the CAS, in a workerd config file or in an API answer (names only).
 */
export class SecretStore {
  readonly #file: string;
  #all: Record<string, Record<string, string>>;

  constructor(dir: string) {
    this.#file = join(dir, "secrets.json");
    try {
      this.#all = JSON.parse(readFileSync(this.#file, "utf8")) as Record<string, Record<string, string>>;
    } catch {
      this.#all = {};
    }
  }

  get(name: string): Record<string, string> {
    return Object.hasOwn(this.#all, name) ? this.#all[name] : {};
  }

  /** Merge `changes` into the function's secrets; an empty value removes that secret. */
  update(name: string, changes: Record<string, string>): void {
    if (Object.keys(changes).length === 0) return;
    const next = { ...this.get(name) };
    for (const [k, v] of Object.entries(changes)) {
      if (v === "") delete next[k];
      else next[k] = v;
    }
    this.#all[name] = next;
    save(this.#file, this.#all);
  }

  remove(name: string): void {
    if (!Object.hasOwn(this.#all, name)) return;
    delete this.#all[name];
    save(this.#file, this.#all);
  }
}
