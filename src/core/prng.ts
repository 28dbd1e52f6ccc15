/**
 * Seeded pseudo-random bytes for tests, conformance suites and benches: AES-128-CTR over zeros, keyed by the seed.
 * It runs at memory speed (AES-NI), so a 1 GiB input is generated as it is consumed and never held in memory. Not in
 * src/test/: the conformance suites beside the code (src/cas/conformance*.ts) use it, and production code never
 * imports src/test/.
 */
import { createCipheriv, createHash } from "node:crypto";

const cipherFor = (seed: string | number) => {
  const key = createHash("sha256").update(`prng:${seed}`).digest();
  return createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16, 32));
};

/** `size` seeded bytes in pieces of `piece` bytes. */
export function* prngStream(seed: string | number, size: number, piece = 1024 * 1024): Generator<Buffer> {
  const c = cipherFor(seed);
  const zeros = Buffer.alloc(piece);
  for (let done = 0; done < size; ) {
    const n = Math.min(piece, size - done);
    yield c.update(n === piece ? zeros : zeros.subarray(0, n));
    done += n;
  }
}

export function prngBytes(seed: string | number, size: number): Buffer {
  return Buffer.concat([...prngStream(seed, size)]);
}

/** A small seeded PRNG for decisions (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
