/**
 * Per-IP token buckets for incoming queries: a flooder gets silence after its burst instead of our CPU and
 * bandwidth (a reflected-amplification source would otherwise be us). The map is bounded; when it is full the
 * least recently seen IP is forgotten, which at worst gives a spoofer spraying many IPs a fresh burst per IP.
 */
export interface RateLimitOptions {
  /** Queries per second an IP may sustain. */
  perSecond: number;
  burst: number;
  maxIps?: number;
}

export class IpRateLimit {
  private readonly ips = new Map<string, { tokens: number; at: number }>();
  private readonly o: Required<RateLimitOptions>;
  private readonly now: () => number;

  constructor(o: RateLimitOptions, now: () => number = Date.now) {
    this.o = { maxIps: 10_000, ...o };
    this.now = now;
  }

  allow(ip: string): boolean {
    const t = this.now();
    let e = this.ips.get(ip);
    if (e) {
      this.ips.delete(ip);
      e.tokens = Math.min(this.o.burst, e.tokens + ((t - e.at) / 1000) * this.o.perSecond);
      e.at = t;
    } else {
      if (this.ips.size >= this.o.maxIps) {
        const oldest = this.ips.keys().next().value;
        if (oldest !== undefined) this.ips.delete(oldest);
      }
      e = { tokens: this.o.burst, at: t };
    }
    this.ips.set(ip, e);
    if (e.tokens < 1) return false;
    e.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.ips.size;
  }
}
