/** A token bucket in bytes per second (0: unlimited), shared by every peer of a node for one direction. */
export class RateLimiter {
  private tokens: number;
  private last = Date.now();
  readonly rate: number;
  constructor(bytesPerSecond: number) {
    this.rate = bytesPerSecond;
    this.tokens = bytesPerSecond;
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }

  /** Spend bytes already moved (downloads: what arrived); the bucket may go into debt. */
  spend(n: number): void {
    if (this.rate <= 0) return;
    this.refill();
    this.tokens -= n;
  }

  /** Whether more may be asked for now. */
  ok(): boolean {
    if (this.rate <= 0) return true;
    this.refill();
    return this.tokens > 0;
  }

  /** Take `n` bytes if the bucket has them (a burst of up to one second). */
  take(n: number): boolean {
    if (this.rate <= 0) return true;
    this.refill();
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}

/** Bytes per second over a sliding window of whole seconds. */
export class Rate {
  private readonly buckets = new Float64Array(5);
  private at = Math.floor(Date.now() / 1000);
  total = 0;

  add(n: number): void {
    this.roll();
    this.buckets[this.at % 5] += n;
    this.total += n;
  }

  get perSecond(): number {
    this.roll();
    let s = 0;
    for (let i = 1; i < 5; i++) s += this.buckets[(this.at - i + 5) % 5] as number;
    return s / 4;
  }

  private roll(): void {
    const now = Math.floor(Date.now() / 1000);
    for (let t = this.at + 1; t <= now && t <= this.at + 5; t++) this.buckets[t % 5] = 0;
    this.at = now;
  }
}
