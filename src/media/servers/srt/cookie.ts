/**
 * SRT SYN cookies (draft-sharabayko-srt section 4.3.1.1; libsrt's "bake"): the induction response carries a
 * cookie derived from the caller's address and port, a secret and the current minute, and the conclusion must
 * echo it. Answering an induction then keeps no state, and a conclusion from a spoofed address (which never saw
 * the response) is dropped before it costs anything: a flood of spoofed handshakes creates no session.
 */
import { createHmac, randomBytes } from "node:crypto";

/** Cookies change every minute; one from the previous minute is still accepted (a handshake across the turn). */
const BUCKET_MS = 60_000;

export class SynCookies {
  readonly #secret = randomBytes(32);
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  #bake(address: string, port: number, bucket: number): number {
    const h = createHmac("sha256", this.#secret).update(`${address}|${port}|${bucket}`).digest();
    return h.readUInt32BE(0);
  }

  /** The cookie for an induction from `address`:`port` now. */
  make(address: string, port: number): number {
    return this.#bake(address, port, Math.floor(this.#now() / BUCKET_MS));
  }

  /** Whether a conclusion's cookie is one we gave `address`:`port` this minute or the last. */
  valid(address: string, port: number, cookie: number): boolean {
    const bucket = Math.floor(this.#now() / BUCKET_MS);
    return cookie === this.#bake(address, port, bucket) || cookie === this.#bake(address, port, bucket - 1);
  }
}
