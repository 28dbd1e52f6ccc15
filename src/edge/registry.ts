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
    const tmp = `${this.#file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.#fns, null, 1), { mode: 0o600 });
    renameSync(tmp, this.#file);
  }
}
