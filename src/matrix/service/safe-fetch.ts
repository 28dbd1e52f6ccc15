/**
 * An HTTP(S) GET that cannot be pointed at the server's own networks (server-side request forgery): the URL
 * previewer's only way out. The host name is resolved here, every address checked against the denied ranges, and the
 * connection made to a checked address (Node's `lookup` hook: the socket never resolves the name again, so a DNS
 * answer that changes between check and connect — rebinding — changes nothing; TLS still verifies the certificate for
 * the name). Redirects are followed by hand, each target checked the same way. One deadline covers the whole fetch,
 * and at most `maxBytes` of the body are read (the rest is cut, `truncated` says so).
 */
import { lookup as dnsLookup } from "node:dns/promises";
import type { IncomingMessage } from "node:http";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { AmiError } from "../../core/errors.ts";

/**
 * Never reached unless allow-listed: IANA special-purpose ranges — "this network", private (RFC 1918), CGNAT,
 * loopback, link-local, IETF protocol assignments, documentation, 6to4 relay, benchmarking, multicast, reserved,
 * broadcast; IPv6 unspecified, loopback, discard, IETF/TEREDO, documentation, 6to4, NAT64, unique-local, link-local,
 * site-local, multicast. IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry.
 */
const DENIED_V4 = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.0.2.0/24",
  "192.88.99.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "198.51.100.0/24",
  "203.0.113.0/24",
  "224.0.0.0/4",
  "240.0.0.0/4",
];
const DENIED_V6 = [
  "::/128",
  "::1/128",
  "100::/64",
  "2001::/23",
  "2001:db8::/32",
  "2002::/16",
  "64:ff9b::/96",
  "64:ff9b:1::/48",
  "fc00::/7",
  "fe80::/10",
  "fec0::/10",
  "ff00::/8",
];

function addRange(list: BlockList, range: string): void {
  const [addr, bits] = range.split("/");
  const family = isIP(addr) === 6 ? "ipv6" : "ipv4";
  if (isIP(addr) === 0) throw new AmiError("AMI_INVALID_CONFIG", `not an IP address or range: ${range}`);
  if (bits === undefined) list.addAddress(addr, family);
  else list.addSubnet(addr, Number(bits), family);
}

/** The IPv4 address an IPv4-mapped IPv6 address (::ffff:a.b.c.d or ::ffff:xxxx:xxxx) carries, else itself. */
function unmap(address: string): string {
  const m = /^::ffff:(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(address);
  if (!m) return address;
  if (m[1]) return m[1];
  const hi = Number.parseInt(m[2], 16);
  const lo = Number.parseInt(m[3], 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Which addresses may be fetched: the built-in denied ranges plus `extraDenied`, except what `allowed` lists. */
export class AddressPolicy {
  readonly #denied = new BlockList();
  readonly #allowed = new BlockList();

  constructor(allowed: readonly string[], extraDenied: readonly string[]) {
    for (const r of [...DENIED_V4, ...DENIED_V6, ...extraDenied]) addRange(this.#denied, r);
    for (const r of allowed) addRange(this.#allowed, r);
  }

  permits(address: string): boolean {
    const a = unmap(address.toLowerCase());
    const family = isIP(a) === 6 ? "ipv6" : "ipv4";
    if (isIP(a) === 0) return false;
    if (this.#allowed.check(a, family)) return true;
    return !this.#denied.check(a, family);
  }
}

export interface FetchedBody {
  /** The URL finally answered (after redirects). */
  url: URL;
  status: number;
  contentType: string;
  body: Buffer;
  truncated: boolean;
}

export interface SafeFetchOptions {
  policy: AddressPolicy;
  maxBytes: number;
  signal: AbortSignal;
  maxRedirects?: number;
  accept?: string;
}

const refused = (why: string) => new AmiError("M_FORBIDDEN", `URL refused: ${why}`);

/** Parse a URL a user gave: http or https, no credentials. */
export function checkUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AmiError("M_INVALID_PARAM", "'url' is not a valid URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new AmiError("M_INVALID_PARAM", "'url' must be an http or https URL");
  if (url.username || url.password) throw new AmiError("M_INVALID_PARAM", "'url' must not carry credentials");
  return url;
}

/** Resolve a host (or take its IP literal) and keep the permitted addresses; none left: refused. */
async function permittedAddresses(
  host: string,
  policy: AddressPolicy,
  signal: AbortSignal,
): Promise<{ address: string; family: number }[]> {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  // The resolver cannot be cancelled; the deadline still ends the wait for it.
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => reject(fetchError(new Error("aborted"), signal));
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
  aborted.catch(() => {});
  const found = isIP(bare)
    ? [{ address: bare, family: isIP(bare) }]
    : await Promise.race([
        dnsLookup(bare, { all: true, verbatim: true }).catch(() => {
          throw new AmiError("M_UNKNOWN", `Could not resolve ${bare}`, {}, 502);
        }),
        aborted,
      ]);
  const ok = found.filter((a) => policy.permits(a.address));
  if (ok.length === 0) throw refused(`${bare} resolves only to addresses this server does not reach`);
  return ok;
}

/** GET `url` under the policy, following up to `maxRedirects` redirects, each re-checked. */
export async function safeFetch(start: URL, opts: SafeFetchOptions): Promise<FetchedBody> {
  let url = start;
  for (let hop = 0; ; hop++) {
    const addrs = await permittedAddresses(url.hostname, opts.policy, opts.signal);
    const res = await get(url, addrs[0], opts);
    const location = res.headers.location;
    if (res.statusCode && res.statusCode >= 300 && res.statusCode < 400 && location) {
      res.resume();
      if (hop >= (opts.maxRedirects ?? 5)) throw new AmiError("M_UNKNOWN", "Too many redirects", {}, 502);
      url = checkUrl(new URL(location, url).href);
      continue;
    }
    const { body, truncated } = await readCapped(res, opts.maxBytes).catch((e) => {
      throw fetchError(e, opts.signal);
    });
    return {
      url,
      status: res.statusCode ?? 0,
      contentType: String(res.headers["content-type"] ?? "application/octet-stream"),
      body,
      truncated,
    };
  }
}

function get(url: URL, addr: { address: string; family: number }, opts: SafeFetchOptions): Promise<IncomingMessage> {
  // The socket "resolves" the name to the address checked above, whatever DNS says now.
  const lookup: LookupFunction = (_host, options, cb) => {
    if ((options as { all?: boolean }).all) (cb as (e: null, a: unknown[]) => void)(null, [addr]);
    else cb(null, addr.address, addr.family);
  };
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: "GET",
      lookup,
      signal: opts.signal,
      agent: false,
      headers: {
        "User-Agent": "ami-streams URL preview (Matrix homeserver)",
        Accept: opts.accept ?? "text/html,application/xhtml+xml,image/*;q=0.9,*/*;q=0.1",
        "Accept-Encoding": "identity",
      },
    });
    req.on("response", resolve);
    req.on("error", (e) => reject(fetchError(e, opts.signal)));
    req.end();
  });
}

function fetchError(e: unknown, signal: AbortSignal): AmiError {
  if (e instanceof AmiError) return e;
  if (signal.aborted) return new AmiError("M_UNKNOWN", "Fetching the URL timed out", {}, 504);
  return new AmiError("M_UNKNOWN", `Fetching the URL failed: ${(e as Error).message.slice(0, 100)}`, {}, 502);
}

/** The body up to `max` bytes; the connection is dropped at the cap. */
function readCapped(res: IncomingMessage, max: number): Promise<{ body: Buffer; truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (truncated: boolean) => {
      if (done) return;
      done = true;
      resolve({ body: Buffer.concat(parts, Math.min(size, max)).subarray(0, max), truncated });
    };
    res.on("data", (c: Buffer) => {
      if (done) return;
      parts.push(c);
      size += c.length;
      if (size >= max) {
        finish(size > max || res.readableLength > 0 || !res.complete);
        res.destroy();
      }
    });
    res.on("end", () => finish(false));
    res.on("error", (e) => (done ? undefined : reject(e)));
    res.on("close", () => finish(!res.complete));
  });
}
