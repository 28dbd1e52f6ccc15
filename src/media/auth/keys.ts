/**
 * Stream keys: `<data>/keys.json` holds one SHA-256 hash per key (keys are 144 random bits, so a plain hash is
 * enough), bound to one stream path. The CLI writes the file (atomically, 0600) and the media service re-reads it
 * when it changes, so creating or revoking a key needs no running server and takes effect at the next publish.
 * Each key is also kept sealed (AES-256-GCM under `<data>/keys.secret`, a separate 0600 file): RTSP Digest
 * authentication proves the key without sending it, so the server must be able to read it back; the hash alone
 * still decides everywhere else, and keys.json without keys.secret reveals nothing.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { AmiError } from "../../core/errors.ts";
import { validPath } from "../hub.ts";

export interface StoredKey {
  /** Short public id (for list/revoke); the first 12 hex digits of the hash. */
  id: string;
  path: string;
  hash: string;
  created: string;
  /** base64url(iv | tag | AES-256-GCM(key)) under keys.secret; absent on keys made before it existed. */
  sealed?: string;
}

const hashOf = (key: string) => createHash("sha256").update(key).digest("hex");

export class KeyStore {
  readonly file: string;
  #cache: { stamp: string; keys: StoredKey[] } | undefined;

  constructor(dataDir: string) {
    this.file = join(dataDir, "keys.json");
  }

  list(path?: string): StoredKey[] {
    const all = this.#read();
    return path ? all.filter((k) => k.path === path) : all;
  }

  /** The stored key a presented secret is, or undefined. */
  find(key: string): StoredKey | undefined {
    if (!key) return undefined;
    const h = hashOf(key);
    return this.#read().find((k) => k.hash === h);
  }

  /** True when `key` is a live key for exactly `path`. */
  valid(key: string, path: string): boolean {
    return this.find(key)?.path === path;
  }

  /** The readable keys of `path` (for Digest authentication); keys without a seal are left out. */
  secrets(path: string): string[] {
    const sealed = this.list(path).filter((k) => k.sealed);
    if (sealed.length === 0) return [];
    let secret: Buffer;
    try {
      secret = readFileSync(this.#secretFile);
    } catch {
      return [];
    }
    const out: string[] = [];
    for (const k of sealed) {
      try {
        const b = Buffer.from(k.sealed as string, "base64url");
        const d = createDecipheriv("aes-256-gcm", secret, b.subarray(0, 12));
        d.setAuthTag(b.subarray(12, 28));
        const key = Buffer.concat([d.update(b.subarray(28)), d.final()]).toString("utf8");
        if (hashOf(key) === k.hash) out.push(key);
      } catch {
        // A seal that does not open (another secret file): that key works by hash only.
      }
    }
    return out;
  }

  get #secretFile(): string {
    return join(dirname(this.file), "keys.secret");
  }

  #seal(key: string): string {
    const f = this.#secretFile;
    if (!existsSync(f)) {
      mkdirSync(dirname(f), { recursive: true });
      try {
        writeFileSync(f, randomBytes(32), { mode: 0o600, flag: "wx" });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", readFileSync(f), iv);
    const body = Buffer.concat([c.update(key, "utf8"), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), body]).toString("base64url");
  }

  create(path: string): { key: string; stored: StoredKey } {
    if (!validPath(path)) throw new AmiError("AMI_INVALID_INPUT", `invalid stream path '${path}'`);
    // URL- and path-safe (base64url), so it can be a query value or the last path element.
    const key = `sk_${randomBytes(18).toString("base64url")}`;
    const hash = hashOf(key);
    const stored = { id: hash.slice(0, 12), path, hash, created: new Date().toISOString(), sealed: this.#seal(key) };
    this.#write([...this.#read(), stored]);
    return { key, stored };
  }

  /** Revoke by id (from `list`) or by the key itself. */
  revoke(idOrKey: string): StoredKey {
    const all = this.#read();
    const h = hashOf(idOrKey);
    const k = all.find((x) => x.id === idOrKey || x.hash === h);
    if (!k) throw new AmiError("M_NOT_FOUND", `no stream key '${idOrKey}'`);
    this.#write(all.filter((x) => x !== k));
    return k;
  }

  #read(): StoredKey[] {
    let stamp: string;
    try {
      const s = statSync(this.file);
      stamp = `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      return [];
    }
    if (this.#cache?.stamp === stamp) return this.#cache.keys;
    let keys: StoredKey[] = [];
    try {
      const v = JSON.parse(readFileSync(this.file, "utf8")) as { keys?: StoredKey[] };
      keys = Array.isArray(v.keys) ? v.keys.filter((k) => k && typeof k.hash === "string") : [];
    } catch {
      // A damaged file means no key is valid (fail closed), not a crash.
    }
    this.#cache = { stamp, keys };
    return keys;
  }

  #write(keys: StoredKey[]): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ version: 1, keys }, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.file);
    this.#cache = undefined;
  }
}
