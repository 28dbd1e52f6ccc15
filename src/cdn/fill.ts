/**
 * Misses and upstream fills: one upstream fetch per key (+ Vary values) however many clients ask, every waiter
 * streamed the bytes as they arrive (flight.ts); revalidation of stale objects (conditional requests, coalesced,
 * stale-if-error on failure, stale-while-revalidate in the background); and pass-through for what is not cacheable.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import CachePolicy from "http-cache-semantics";
import { sendJson } from "../core/http/reply.ts";
import type { CdnConfig } from "./config.ts";
import type { DiskTier } from "./disk.ts";
import { Flight } from "./flight.ts";
import { mediaDefaults } from "./media-origin.ts";
import type { EdgeStats } from "./stats.ts";
import { type CachedObject, type MemoryTier, tagsOf } from "./store.ts";
import type { Upstreams } from "./upstream.ts";
import {
  cleanHeaders,
  FORWARDED,
  HOP,
  headerStrings,
  objectHeaders,
  pick304,
  responseExtras,
  staleIfError,
} from "./wire.ts";

export interface FillHost {
  config: CdnConfig;
  stats: EdgeStats;
  tier: MemoryTier;
  disk: DiskTier | undefined;
  upstreams: Upstreams;
  via: string;
  /** Answers from a stored object (the hit path): a stale copy when the upstream fails. */
  reply(req: IncomingMessage, res: ServerResponse, o: CachedObject, state: string): Promise<void>;
}

export class Filler {
  readonly flights = new Map<string, Flight>();
  /** Vary header names last seen per primary key (so a flight is keyed by them before the answer arrives). */
  readonly varyNames = new Map<string, string[]>();
  /** Keys seen to be larger than maxObjectBytes: their Range requests go straight upstream. */
  readonly tooLarge = new Set<string>();
  private readonly h: FillHost;

  constructor(h: FillHost) {
    this.h = h;
  }

  flightId(primary: string, req: IncomingMessage): string {
    const names = this.varyNames.get(primary) ?? [];
    return `${primary}\n${names.map((n) => `${n}=${req.headers[n] ?? ""}`).join("\n")}`;
  }

  upstreamHeaders(req: IncomingMessage, primary: string): Record<string, string> {
    const h: Record<string, string> = {};
    for (const n of [...FORWARDED, ...(this.varyNames.get(primary) ?? [])]) {
      const v = req.headers[n];
      if (typeof v === "string") h[n] = v;
    }
    h.via = this.h.via;
    return h;
  }

  miss(req: IncomingMessage, res: ServerResponse, url: string, primary: string): void {
    const id = this.flightId(primary, req);
    let flight = this.flights.get(id);
    if (flight) {
      this.h.stats.coalesced++;
      flight.attach(req, res, responseExtras("COALESCED", this.h.via), (n) => {
        this.h.stats.bytesServed += n;
      });
      return;
    }
    this.h.stats.misses++;
    flight = new Flight();
    this.flights.set(id, flight);
    // A body too large to store is not kept for late joiners either: they start their own fetch.
    flight.retainLimit = this.h.tier.maxObjectBytes;
    flight.onOverflow = (deferred) => {
      if (this.flights.get(id) === flight) this.flights.delete(id);
      if (this.tooLarge.size > 10_000) this.tooLarge.clear();
      this.tooLarge.add(primary);
      for (const w of deferred) this.passThrough(w.req, w.res, url, primary).catch(() => w.res.destroy());
    };
    flight.attach(req, res, responseExtras("MISS", this.h.via), (n) => {
      this.h.stats.bytesServed += n;
    });
    this.fill(flight, req, url, primary, null)
      .catch((e) => flight.fail(e as Error))
      .finally(() => this.flights.delete(id));
  }

  /** Fetches from upstream into a flight; stores the object if the rules allow. `cond`: a stale object revalidated. */
  private async fill(
    flight: Flight,
    req: IncomingMessage,
    url: string,
    primary: string,
    cond: CachedObject | null,
  ): Promise<void> {
    const headers = this.upstreamHeaders(req, primary);
    const reqLike = { url, method: "GET", headers: req.headers };
    if (cond) Object.assign(headers, cond.policy.revalidationHeaders(reqLike));
    for (const h of HOP) delete headers[h];
    let up: IncomingMessage;
    try {
      this.h.stats.originRequests++;
      ({ res: up } = await this.h.upstreams.fetch(
        { method: "GET", path: url, headers: headerStrings(headers), key: primary },
        req.headers.host ?? "",
      ));
    } catch (e) {
      this.h.stats.originErrors++;
      flight.fail(e as Error);
      return;
    }
    const status = up.statusCode ?? 502;
    const resHeaders = cleanHeaders(up.headers);
    mediaDefaults(url, status, resHeaders);
    if (status >= 500 && flight.staleFallback) {
      up.resume();
      this.h.stats.originErrors++;
      flight.fail(new Error(`upstream ${status}`));
      return;
    }
    if (cond && status === 304) {
      up.resume();
      const { policy, modified } = cond.policy.revalidatedPolicy(reqLike, { status, headers: up.headers });
      if (!modified) {
        this.h.stats.revalidated++;
        const o: CachedObject = {
          ...cond,
          freshUntil: undefined,
          wire: undefined,
          wireSec: undefined,
          policy,
          soft: false,
          headers: { ...cond.headers, ...pick304(resHeaders) },
        };
        this.h.tier.put(o);
        this.h.disk?.put(o);
        flight.complete(o.status, objectHeaders(o), o.body);
        return;
      }
    }
    const varyHeader = resHeaders.vary;
    const vary =
      typeof varyHeader === "string"
        ? varyHeader
            .toLowerCase()
            .split(/\s*,\s*/)
            .filter(Boolean)
        : [];
    if (vary.length) this.varyNames.set(primary, vary);
    const policy = new CachePolicy(reqLike, { status, headers: resHeaders }, { shared: true });
    const declared = Number(up.headers["content-length"] ?? Number.NaN);
    const storable =
      policy.storable() &&
      !vary.includes("*") &&
      !resHeaders["set-cookie"] &&
      (Number.isNaN(declared) || declared <= this.h.tier.maxObjectBytes);
    flight.begin(status, { ...resHeaders });
    const chunks: Buffer[] = [];
    let size = 0;
    let keep = storable;
    up.on("data", (c: Buffer) => {
      this.h.stats.bytesFromOrigin += c.length;
      if (keep) {
        size += c.length;
        if (size > this.h.tier.maxObjectBytes) {
          keep = false;
          chunks.length = 0;
        } else chunks.push(c);
      }
      flight.push(c);
    });
    up.on("error", (e) => flight.fail(e));
    up.on("aborted", () => flight.fail(new Error("upstream aborted")));
    await new Promise<void>((resolve) => {
      up.on("end", () => {
        if (!up.complete) {
          flight.fail(new Error("upstream ended early"));
          return resolve();
        }
        if (keep) {
          const body = Buffer.concat(chunks, size);
          const o: CachedObject = {
            id: `${primary}\n${vary.map((n) => `${n}=${req.headers[n] ?? ""}`).join("\n")}`,
            primary,
            path: url,
            status,
            headers: resHeaders,
            body,
            policy,
            tags: tagsOf(resHeaders),
            soft: false,
            staleIfError: staleIfError(resHeaders, this.h.config.staleIfErrorSeconds),
          };
          this.h.tier.put(o);
          this.h.disk?.put(o);
        }
        flight.end();
        resolve();
      });
      up.on("close", () => resolve());
    });
  }

  /** A stale (or soft-purged) object: one conditional request; on upstream failure the stale copy if allowed. */
  revalidateForClient(
    req: IncomingMessage,
    res: ServerResponse,
    url: string,
    primary: string,
    stale: CachedObject,
  ): void {
    const id = `${this.flightId(primary, req)}\nreval`;
    let flight = this.flights.get(id);
    const extras = responseExtras("REVALIDATED", this.h.via);
    const count = (n: number) => {
      this.h.stats.bytesServed += n;
    };
    const onFail = () => {
      if (this.usableOnError(stale)) {
        this.h.stats.staleServed++;
        this.h.reply(req, res, stale, "STALE");
        return true;
      }
      return false;
    };
    if (flight) {
      this.h.stats.coalesced++;
      flight.attach(req, res, extras, count, onFail);
      return;
    }
    this.h.stats.misses++;
    flight = new Flight();
    flight.staleFallback = this.usableOnError(stale);
    this.flights.set(id, flight);
    flight.attach(req, res, extras, count, onFail);
    this.fill(flight, req, url, primary, stale)
      .catch((e) => flight.fail(e as Error))
      .finally(() => this.flights.delete(id));
  }

  async revalidate(req: IncomingMessage, url: string, primary: string, o: CachedObject): Promise<void> {
    const id = `${this.flightId(primary, req)}\nreval`;
    if (this.flights.has(id)) return;
    const flight = new Flight();
    flight.staleFallback = true;
    this.flights.set(id, flight);
    try {
      await this.fill(flight, req, url, primary, o);
    } catch (e) {
      flight.fail(e as Error);
    } finally {
      this.flights.delete(id);
    }
  }

  private usableOnError(o: CachedObject): boolean {
    const cc = o.headers["cache-control"];
    if (typeof cc === "string" && /must-revalidate|proxy-revalidate|no-cache/i.test(cc)) return false;
    // timeToLive() is negative once stale: how far past expiry we are.
    const pastMs = o.soft ? 0 : -o.policy.timeToLive();
    return pastMs <= o.staleIfError * 1000;
  }

  /** Not cacheable (methods with bodies, cookies, credentials): streamed both ways; unsafe methods invalidate. */
  async passThrough(req: IncomingMessage, res: ServerResponse, url: string, primary: string): Promise<void> {
    this.h.stats.bypass++;
    const headers: Record<string, string> = {};
    // Pseudo-headers (`:path`, `:authority`... of an h2 request) are not headers of the upstream HTTP/1.1 request.
    for (const [k, v] of Object.entries(req.headers))
      if (!HOP.has(k) && k !== "host" && k[0] !== ":" && v !== undefined)
        headers[k] = Array.isArray(v) ? v.join(", ") : v;
    headers.via = this.h.via;
    const hasBody = req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
    try {
      const { res: up } = await this.h.upstreams.fetch(
        { method: req.method ?? "GET", path: url, headers, key: primary, body: hasBody ? req : null },
        req.headers.host ?? "",
      );
      const status = up.statusCode ?? 502;
      if (!["GET", "HEAD", "OPTIONS"].includes(req.method ?? "") && status < 400) {
        this.h.tier.purge({ urls: [primary] });
        this.h.disk?.purge({ urls: [primary] });
      }
      res.writeHead(status, { ...cleanHeaders(up.headers), ...responseExtras("BYPASS", this.h.via) });
      up.pipe(res);
    } catch (e) {
      this.h.stats.originErrors++;
      sendJson(res, 502, { errcode: "AMI_UNAVAILABLE", error: `upstream failed: ${(e as Error).message}` });
    }
  }
}
