/**
 * SRT encryption (draft-sharabayko-srt section 6, libsrt's haicrypt): the caller sends a Key Material message
 * (KMREQ) holding the stream encrypting key (SEK) wrapped (RFC 3394 AES key wrap) with a key-encrypting key
 * (KEK) that both sides derive from the passphrase: PBKDF2-HMAC-SHA1, 2048 iterations, salt = the last 8 bytes
 * of the KM's 16-byte salt. Payloads are AES-CTR with the IV built from the salt and the packet's sequence number.
 * A KM that does not unwrap under our passphrase (the wrap's integrity check fails) is a wrong passphrase.
 */
import { createCipheriv, createDecipheriv, pbkdf2Sync } from "node:crypto";

const KM_SALT = 16;
const WRAP_IV = Buffer.from("a6a6a6a6a6a6a6a6", "hex");
/** KM message: version 1, packet type 2 (KM), signature 0x2029 ("HAI"). */
const KM_VERSION_PT = 0x12;
const KM_SIGN = 0x2029;
const CIPHER_AES_CTR = 2;

export const validPassphrase = (p: string): boolean => p.length >= 10 && p.length <= 79;

export interface KeyMaterial {
  salt: Buffer;
  /** Even and/or odd SEK (a KM can carry both during a key switch). */
  even: Buffer | undefined;
  odd: Buffer | undefined;
  keyLen: number;
}

export type KmResult = { ok: true; km: KeyMaterial } | { ok: false; badSecret: boolean; why: string };

const kekCache = new Map<string, Buffer>();

function kek(passphrase: string, salt: Buffer, keyLen: number): Buffer {
  const id = `${keyLen}|${salt.toString("hex")}|${passphrase}`;
  let k = kekCache.get(id);
  if (!k) {
    k = pbkdf2Sync(passphrase, salt.subarray(KM_SALT - 8), 2048, keyLen, "sha1");
    if (kekCache.size > 256) kekCache.clear();
    kekCache.set(id, k);
  }
  return k;
}

/** Whether opening `msg` with `passphrase` would find its KEK cached (no PBKDF2 to run: a retransmitted KMREQ). */
export function kekCached(msg: Buffer, passphrase: string): boolean {
  if (msg.length < KM_SALT + 16) return true; // refused before any PBKDF2
  const keyLen = (msg[15] as number) * 4;
  return kekCache.has(`${keyLen}|${msg.subarray(16, 16 + KM_SALT).toString("hex")}|${passphrase}`);
}

/**
 * PBKDF2 runs a second (each ~1 ms of the event loop): a token bucket, so callers with the cookie of their address
 * but new salts every time cannot spend the CPU on key derivation. Conclusions beyond it are dropped unanswered;
 * libsrt retransmits them every 250 ms.
 */
export class KdfBudget {
  readonly #perSecond: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(perSecond: number, now: () => number = Date.now) {
    this.#perSecond = perSecond;
    this.#now = now;
    this.#tokens = perSecond;
    this.#at = now();
  }

  take(): boolean {
    const now = this.#now();
    this.#tokens = Math.min(this.#perSecond, this.#tokens + ((now - this.#at) * this.#perSecond) / 1000);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}

const wrapAlg = (len: number) => `id-aes${len * 8}-wrap`;
const ctrAlg = (len: number) => `aes-${len * 8}-ctr`;

/** Parses and unwraps a KM message with `passphrase`. */
export function openKm(msg: Buffer, passphrase: string): KmResult {
  const bad = (why: string): KmResult => ({ ok: false, badSecret: false, why });
  if (msg.length < KM_SALT + 8 || msg[0] !== KM_VERSION_PT || msg.readUInt16BE(1) !== KM_SIGN)
    return bad("not an SRT key material message");
  const kk = (msg[3] as number) & 3;
  if (msg[8] !== CIPHER_AES_CTR) return bad(`cipher ${msg[8]} (only AES-CTR)`);
  const saltLen = (msg[14] as number) * 4;
  const keyLen = (msg[15] as number) * 4;
  if (saltLen !== KM_SALT || ![16, 24, 32].includes(keyLen) || kk === 0) return bad("unsupported salt or key length");
  const keys = kk === 3 ? 2 : 1;
  const wrapped = msg.subarray(16 + saltLen, 16 + saltLen + keys * keyLen + 8);
  if (wrapped.length !== keys * keyLen + 8) return bad("truncated key material");
  const salt = Buffer.from(msg.subarray(16, 16 + saltLen));
  let clear: Buffer;
  try {
    const d = createDecipheriv(wrapAlg(keyLen), kek(passphrase, salt, keyLen), WRAP_IV);
    clear = Buffer.concat([d.update(wrapped), d.final()]);
  } catch {
    return { ok: false, badSecret: true, why: "the key material does not unwrap: wrong passphrase" };
  }
  const even = kk & 1 ? clear.subarray(0, keyLen) : undefined;
  const odd = kk & 2 ? clear.subarray(kk === 3 ? keyLen : 0, (kk === 3 ? keyLen : 0) + keyLen) : undefined;
  return { ok: true, km: { salt, even, odd, keyLen } };
}

/** A KM message for `km` wrapped with `passphrase` (what a caller sends; tests and the bench use it). */
export function sealKm(km: KeyMaterial, passphrase: string): Buffer {
  const kk = (km.even ? 1 : 0) | (km.odd ? 2 : 0);
  const clear = Buffer.concat([km.even, km.odd].filter((k): k is Buffer => !!k));
  const c = createCipheriv(wrapAlg(km.keyLen), kek(passphrase, km.salt, km.keyLen), WRAP_IV);
  const wrapped = Buffer.concat([c.update(clear), c.final()]);
  const h = Buffer.alloc(16);
  h[0] = KM_VERSION_PT;
  h.writeUInt16BE(KM_SIGN, 1);
  h[3] = kk;
  h[8] = CIPHER_AES_CTR;
  h[10] = 2; // SE: MPEG-TS / SRT
  h[14] = KM_SALT / 4;
  h[15] = km.keyLen / 4;
  return Buffer.concat([h, km.salt, wrapped]);
}

/** AES-CTR over a payload, in place semantics aside (returns a new buffer): encryption and decryption alike. */
export function ctr(km: KeyMaterial, kk: number, seq: number, payload: Buffer): Buffer | undefined {
  const key = kk === 2 ? km.odd : km.even;
  if (!key) return undefined;
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(seq >>> 0, 10);
  for (let i = 0; i < 14; i++) iv[i] = (iv[i] as number) ^ (km.salt[i] as number);
  const c = createCipheriv(ctrAlg(km.keyLen), key, iv);
  return c.update(payload);
}
