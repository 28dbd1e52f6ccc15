/**
 * Signed expiring playback URLs: `?exp=<unix seconds>&sig=<HMAC-SHA256(secret, "<path>\n<exp>"), base64url>`.
 * The secret lives in `<data>/sign.key` (0600, created on first use) so the CLI can sign without the server.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

export type SigCheck = "ok" | "missing" | "expired" | "bad";

export class Signer {
  readonly file: string;
  #secret: Buffer | undefined;

  constructor(dataDir: string) {
    this.file = join(dataDir, "sign.key");
  }

  #key(): Buffer {
    if (this.#secret) return this.#secret;
    if (!existsSync(this.file)) {
      mkdirSync(dirname(this.file), { recursive: true });
      const tmp = `${this.file}.${process.pid}.tmp`;
      writeFileSync(tmp, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 });
      // Never replace a secret another process wrote first: renaming over it would void its signatures.
      if (!existsSync(this.file)) renameSync(tmp, this.file);
    }
    this.#secret = Buffer.from(readFileSync(this.file, "utf8").trim());
    return this.#secret;
  }

  sig(path: string, exp: number): string {
    return createHmac("sha256", this.#key()).update(`${path}\n${exp}`).digest("base64url");
  }

  /** The query that lets a reader play `path` until `exp` (unix seconds). */
  query(path: string, exp: number): string {
    return new URLSearchParams({ exp: String(exp), sig: this.sig(path, exp) }).toString();
  }

  check(path: string, q: URLSearchParams, now = Date.now()): SigCheck {
    const exp = q.get("exp");
    const sig = q.get("sig");
    if (!exp || !sig) return "missing";
    if (!/^\d{1,12}$/.test(exp)) return "bad";
    const want = Buffer.from(this.sig(path, Number(exp)));
    const got = Buffer.from(sig);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return "bad";
    return Number(exp) * 1000 < now ? "expired" : "ok";
  }
}

/** `90`, `90s`, `10m`, `1h`, `7d` -> seconds. */
export function parseTtl(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([smhd]?)$/.exec(s.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * ({ "": 1, s: 1, m: 60, h: 3600, d: 86400 } as const)[m[2] as "" | "s" | "m" | "h" | "d"];
  return n > 0 ? Math.round(n) : undefined;
}
