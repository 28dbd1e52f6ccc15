/** Seeded request-body fuzzer for the e2e fuzz test: random values, mutations of valid bodies, broken JSON. */
import { enc, prng } from "./client.ts";

export class Fuzzer {
  readonly rnd: () => number;
  constructor(seed: number) {
    this.rnd = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
  string(): string {
    return this.pick([
      () => "",
      () => "a".repeat(1 + this.int(20)),
      () => "x".repeat(50_000 + this.int(100_000)),
      () => "💥🚀ü\u202e\u200b",
      () => "\u0000nul\u0000",
      () => "\ud800 lone surrogate \udfff",
      () => "@user:localhost",
      () => "!room:localhost",
      () => "$event",
      () => "#alias:localhost",
      () => "../../etc/passwd",
      () => "%00%ff%2F",
      () => "m.room.message",
      () => "<script>alert(1)</script>",
      () => String.fromCharCode(...Array.from({ length: 16 }, () => this.int(0x3000))),
    ])();
  }
  scalar(): unknown {
    return this.pick([
      () => null,
      () => true,
      () => false,
      () => 0,
      () => -1,
      () => 2 ** 53 + 2,
      () => -(2 ** 63),
      () => 1.5,
      () => 1e308,
      () => this.int(1_000_000),
      () => this.string(),
    ])();
  }
  value(depth = 0): unknown {
    if (depth > 3 || this.chance(0.5)) return this.scalar();
    return this.chance(0.5)
      ? Array.from({ length: this.int(4) }, () => this.value(depth + 1))
      : Object.fromEntries(
          Array.from({ length: this.int(4) }, () => [
            this.pick(["a", "type", "content", "body", ""]),
            this.value(depth + 1),
          ]),
        );
  }
  /** Deeply nested arrays or objects, as JSON text (building it as a value would overflow JSON.stringify). */
  deep(): string {
    const n = 500 + this.int(20_000);
    return this.chance(0.5) ? "[".repeat(n) + "]".repeat(n) : '{"a":'.repeat(n) + "1" + "}".repeat(n);
  }
  /** Mutate a valid body: swap types, drop/add keys, nest, null out, replace objects with arrays... */
  mutate(v: unknown, depth = 0): unknown {
    if (v === null || typeof v !== "object") return this.chance(0.3) ? this.scalar() : v;
    if (Array.isArray(v)) {
      if (this.chance(0.15)) return this.value();
      return v
        .map((x) => (this.chance(0.5) ? this.mutate(x, depth + 1) : x))
        .concat(this.chance(0.2) ? [this.value()] : []);
    }
    if (this.chance(0.1)) return this.pick([[], null, "object", [v]]);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const r = this.rnd();
      if (r < 0.1) continue; // drop the key
      out[k] = r < 0.55 ? this.mutate(x, depth + 1) : x;
    }
    if (this.chance(0.2)) out[this.pick(["extra", "\u0000", "🚀", "type", "content"])] = this.value();
    return out;
  }
  /** The request body text: mostly a mutated valid body, sometimes raw junk or broken JSON. */
  bodyText(valid: unknown): string | Buffer {
    const r = this.rnd();
    if (r < 0.05) return this.deep();
    if (r < 0.09) return randomBytesFrom(this);
    if (r < 0.13) {
      const t = JSON.stringify(valid);
      return t.slice(0, this.int(t.length));
    }
    if (r < 0.16) return JSON.stringify(this.value());
    if (r < 0.2) return JSON.stringify(valid) + this.pick([",", "}", "\u0000", " garbage"]);
    if (r < 0.23) return JSON.stringify(valid).replace(/"/g, this.pick(["'", "\\", ""]));
    return JSON.stringify(this.mutate(valid));
  }
  /** A path segment: usually the valid one, sometimes junk. */
  seg(valid: string): string {
    if (this.chance(0.85)) return enc(valid);
    return this.pick([
      enc(this.string().slice(0, 300).toWellFormed()),
      "%00",
      "%ff%fe",
      "..",
      "%2e%2e",
      "",
      enc("x".repeat(5000)),
    ]);
  }
}

function randomBytesFrom(f: Fuzzer): Buffer {
  return Buffer.from(Array.from({ length: 1 + f.int(200) }, () => f.int(256)));
}
