/**
 * The client's address behind reverse proxies, one rule for every listener: X-Forwarded-For is believed only when
 * the connection comes from a configured trusted proxy, and only as far back as the chain of trusted proxies goes.
 * Walking the header from the right (the hop nearest to us) stops at the first address that is not a trusted
 * proxy: that is the client. So a client that talks to us directly cannot spoof its address (its peer address is
 * not trusted, the header is ignored), and one behind our proxy cannot either (what it wrote is to the left of the
 * address our proxy appended, and the walk stops there).
 */
import type { IncomingMessage } from "node:http";
import { BlockList, isIP } from "node:net";
import { AmiError } from "../errors.ts";

/** Past this many hops the header is not read further (a proxy chain is a few hops; the rest is noise). */
const MAX_HOPS = 16;

/** The IPv4 address an IPv4-mapped IPv6 address (::ffff:a.b.c.d) carries, else the address itself. */
export function unmapAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

/** A CIDR range (`10.0.0.0/8`, `fd00::/8`) or a single address; null when it is neither. */
export function parseCidr(range: string): { address: string; prefix: number | null; family: "ipv4" | "ipv6" } | null {
  const [address, bits, extra] = range.split("/");
  if (extra !== undefined) return null;
  const v = isIP(address);
  if (v === 0) return null;
  if (bits === undefined) return { address, prefix: null, family: v === 6 ? "ipv6" : "ipv4" };
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > (v === 6 ? 128 : 32)) return null;
  return { address, prefix: Number(bits), family: v === 6 ? "ipv6" : "ipv4" };
}

/** The addresses whose X-Forwarded-For is believed (a config's `trustedProxies`). */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly size: number;

  constructor(ranges: readonly string[]) {
    for (const r of ranges) {
      const c = parseCidr(r);
      if (!c) throw new AmiError("AMI_INVALID_CONFIG", `trustedProxies: not an IP address or CIDR range: ${r}`);
      if (c.prefix === null) this.#list.addAddress(c.address, c.family);
      else this.#list.addSubnet(c.address, c.prefix, c.family);
    }
    this.size = ranges.length;
  }

  has(address: string): boolean {
    const a = unmapAddress(address);
    const v = isIP(a);
    return v !== 0 && this.#list.check(a, v === 6 ? "ipv6" : "ipv4");
  }

  /** The client's address for a request that arrived from `peer` with this X-Forwarded-For. */
  resolve(peer: string, forwardedFor: string | string[] | undefined): string {
    let addr = unmapAddress(peer);
    if (this.size === 0 || forwardedFor === undefined || !this.has(addr)) return addr;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor).split(",");
    for (let i = hops.length - 1, n = 0; i >= 0 && n < MAX_HOPS; i--, n++) {
      const hop = hops[i].trim();
      // Garbage in the chain: the last address we could vouch for is all we know.
      if (isIP(hop) === 0) return addr;
      addr = unmapAddress(hop);
      if (!this.has(addr)) return addr;
    }
    return addr;
  }

  /** `resolve` for a request of the kit's listeners. */
  clientOf(req: IncomingMessage): string {
    return this.resolve(req.socket.remoteAddress ?? "?", req.headers["x-forwarded-for"]);
  }
}
