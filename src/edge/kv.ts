/**
 * KV for edge functions on the content-addressed store: values are CAS objects (deduplicated, verified), each held
 * by `edge-kv:<function>:<key>`; a per-function index (key -> object id) is one JSON file. Reached by workerd through
 * the KV_SERVICE binding (an external service pointing at the edge service, with the function's name and token
 * injected by workerd, so a function only ever sees its own namespace).
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CasStore } from "../cas/types.ts";

export class KvStore {
  readonly #dir: string;
  readonly #cas: CasStore;
  readonly #index = new Map<string, Record<string, string>>();
  /** Writes to one namespace are serialized (index read-modify-write). */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(dir: string, cas: CasStore) {
    this.#dir = dir;
    this.#cas = cas;
  }

  #file(fn: string): string {
    return join(this.#dir, `${fn}.json`);
  }

  #ns(fn: string): Record<string, string> {
    let m = this.#index.get(fn);
    if (!m) {
      // A null prototype: a function's key "__proto__" is a key like any other (on a plain object its write was
      // lost while its CAS hold stayed, a leak a function could repeat at will).
      m = Object.create(null) as Record<string, string>;
      try {
        Object.assign(m, JSON.parse(readFileSync(this.#file(fn), "utf8")) as Record<string, string>);
      } catch {}
      this.#index.set(fn, m);
    }
    return m;
  }

  #save(fn: string): void {
    const tmp = `${this.#file(fn)}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.#ns(fn)), { mode: 0o600 });
    renameSync(tmp, this.#file(fn));
  }

  #serial<T>(fn: string, work: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(fn) ?? Promise.resolve();
    const next = prev.then(work, work);
    this.#locks.set(
      fn,
      next.catch(() => {}),
    );
    return next;
  }

  /** The value's CAS id, or undefined. */
  id(fn: string, key: string): string | undefined {
    const ns = this.#ns(fn);
    return Object.hasOwn(ns, key) ? ns[key] : undefined;
  }

  get(fn: string, key: string): AsyncIterable<Buffer> | undefined {
    const id = this.id(fn, key);
    return id ? this.#cas.get(id) : undefined;
  }

  put(fn: string, key: string, value: Uint8Array): Promise<void> {
    return this.#serial(fn, async () => {
      const hold = `edge-kv:${fn}:${key}`;
      const old = this.id(fn, key);
      const r = await this.#cas.put(value, { hold });
      this.#ns(fn)[key] = r.id;
      this.#save(fn);
      if (old && old !== r.id) await this.#cas.release(old, hold).catch(() => {});
    });
  }

  delete(fn: string, key: string): Promise<boolean> {
    return this.#serial(fn, async () => {
      const old = this.id(fn, key);
      if (!old) return false;
      delete this.#ns(fn)[key];
      this.#save(fn);
      await this.#cas.release(old, `edge-kv:${fn}:${key}`).catch(() => {});
      return true;
    });
  }

  list(fn: string, prefix: string): string[] {
    return Object.keys(this.#ns(fn))
      .filter((k) => k.startsWith(prefix))
      .sort();
  }

  /** Drop a function's namespace (edge delete). */
  async drop(fn: string): Promise<void> {
    for (const k of this.list(fn, "")) await this.delete(fn, k);
  }
}
