/**
 * announce_peer tokens (BEP 5): the token handed out in a get_peers answer is SHA-1(secret || requester IP),
 * truncated to 8 bytes. The secret rotates every 5 minutes and the previous one is still accepted, so a token is
 * valid for 5 to 10 minutes, needs no per-requester state, and is useless from another IP.
 */
import { createHash, randomBytes } from "node:crypto";

export const TOKEN_ROTATE_MS = 5 * 60_000;

export class TokenSecrets {
  private current = randomBytes(16);
  private previous = randomBytes(16);
  private rotatedAt: number;
  private readonly now: () => number;
  private readonly rotateMs: number;

  constructor(now: () => number = Date.now, rotateMs = TOKEN_ROTATE_MS) {
    this.now = now;
    this.rotateMs = rotateMs;
    this.rotatedAt = now();
  }

  private rotate(): void {
    const t = this.now();
    if (t - this.rotatedAt < this.rotateMs) return;
    // After two idle periods both secrets are stale.
    this.previous = t - this.rotatedAt >= 2 * this.rotateMs ? randomBytes(16) : this.current;
    this.current = randomBytes(16);
    this.rotatedAt = t;
  }

  private make(secret: Buffer, ip: string): Buffer {
    return createHash("sha1").update(secret).update(ip).digest().subarray(0, 8);
  }

  issue(ip: string): Buffer {
    this.rotate();
    return this.make(this.current, ip);
  }

  check(token: Buffer, ip: string): boolean {
    this.rotate();
    return token.equals(this.make(this.current, ip)) || token.equals(this.make(this.previous, ip));
  }
}
