/**
 * The edge node: a caching reverse proxy on the shared HTTP kit. GET/HEAD go through the memory tier with RFC 9111
 * rules (http-cache-semantics: freshness, `Vary`, revalidation, stale-while-revalidate) plus stale-if-error; a miss
 * is fetched once per key however many clients ask, and every waiter is streamed the bytes as they arrive
 * (flight.ts). Ranges are cut from stored objects. Purges (URL, prefix, surrogate key; soft or hard) arrive on
 * `POST /_ami/purge`. Only a fixed set of request headers, plus what the origin names in `Vary`, reaches the
 * upstream, so a header outside the key cannot shape a stored answer (cache poisoning).
 *
 * Seam for edge functions (src/edge): `functions.beforeCache` may answer a request before the cache is consulted;
 * `functions.afterCache` may answer from a cached or fetched object (it gets the object's status, headers, body).
 */

import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from "node:http";
import CachePolicy from "http-cache-semantics";
import { AmiError } from "../core/errors.ts";
import { readJson } from "../core/http/body.ts";
import type { FastRequest } from "../core/http/fast.ts";
import { sendJson } from "../core/http/reply.ts";
import { createHttpListener, type HttpListener } from "../core/http/server.ts";
import type { Target } from "../core/http/target.ts";
import type { Logger } from "../core/logger.ts";
import type { CdnConfig } from "./config.ts";
import type { DiskTier } from "./disk.ts";
import { Flight } from "./flight.ts";
import { keyOf, normalisePath, primaryKey } from "./key.ts";
import { mediaDefaults } from "./media-origin.ts";
import { parseRange } from "./range.ts";
import { needsSignature, verifyTarget } from "./sign.ts";
import { NoRanges, Slicer, sliceable } from "./slice.ts";
import { type CachedObject, MemoryTier, type PurgeRequest, tagsOf } from "./store.ts";
import { Upstreams } from "./upstream.ts";

export interface EdgeObject {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

/** Where an edge function runs; true: it answered (the node does nothing more for this request). */
export interface EdgeFunctionSeam {
  beforeCache?(req: IncomingMessage, res: ServerResponse): Promise<boolean> | boolean;
  afterCache?(req: IncomingMessage, res: ServerResponse, obj: EdgeObject): Promise<boolean> | boolean;
}

export interface EdgeNodeOptions {
  config: CdnConfig;
  /** Resolved origin URL (config.origin or the media service). */
  origin: string;
  log: Logger;
  functions?: EdgeFunctionSeam;
  /** The disk tier (objects beyond the memory budget, and across restarts); absent: memory only. */
  disk?: DiskTier;
}

/** Request headers passed upstream on cacheable requests (besides the ones the origin lists in Vary). */
const FORWARDED = ["accept", "accept-encoding", "accept-language", "user-agent"];
const HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "proxy-authenticate",
  "proxy-authorization",
]);

export interface EdgeStats {
  requests: number;
  hits: number;
  misses: number;
  coalesced: number;
  staleServed: number;
  revalidated: number;
  notModified: number;
  bypass: number;
  originRequests: number;
  originErrors: number;
  bytesServed: number;
  bytesFromOrigin: number;
  purges: number;
  purgedObjects: number;
  rejected: number;
  /** Lookups answered from the disk tier (the memory tier did not have the key). */
  diskReads: number;
  /** Refused for a missing, bad or expired URL signature (no upstream request made). */
  forbidden: number;
}

export class EdgeNode {
  readonly stats: EdgeStats = {
    requests: 0,
    hits: 0,
    misses: 0,
    coalesced: 0,
    staleServed: 0,
    revalidated: 0,
    notModified: 0,
    bypass: 0,
    originRequests: 0,
    originErrors: 0,
    bytesServed: 0,
    bytesFromOrigin: 0,
    purges: 0,
    purgedObjects: 0,
    rejected: 0,
    forbidden: 0,
    diskReads: 0,
  };
  readonly tier: MemoryTier;
  readonly upstreams: Upstreams;
  readonly disk: DiskTier | undefined;
  private readonly slicer: Slicer | undefined;
  private readonly flights = new Map<string, Flight>();
  /** Vary header names last seen per primary key (so a flight is keyed by them before the answer arrives). */
  private readonly varyNames = new Map<string, string[]>();
  /** Keys seen to be larger than maxObjectBytes: their Range requests go straight upstream. */
  private readonly tooLarge = new Set<string>();
  private readonly latencies = new Float64Array(1024);
  private latencyN = 0;
  private listener: HttpListener | null = null;
  private tlsListener: HttpListener | null = null;
  /** The HTTPS listener's URL when `tls` is set. */
  tlsUrl = "";
  /** Requests per second over the last whole second (sampled by a timer: no per-request clock reads). */
  private rps = 0;
  private rpsTimer: NodeJS.Timeout | undefined;
  readonly via: string;
  url = "";

  private readonly o: EdgeNodeOptions;

  constructor(o: EdgeNodeOptions) {
    this.o = o;
    this.tier = new MemoryTier(o.config.memoryBytes, o.config.maxObjectBytes);
    this.disk = o.disk;
    this.upstreams = new Upstreams(o.origin, o.config.parents, o.config.upstreamTimeoutMs);
    this.slicer =
      o.config.sliceBytes > 0
        ? new Slicer({
            tier: this.tier,
            disk: o.disk,
            upstreams: this.upstreams,
            sliceBytes: o.config.sliceBytes,
            stats: this.stats,
            countServed: (n) => {
              this.stats.bytesServed += n;
            },
            upstreamHeaders: (req, primary) => this.upstreamHeaders(req, primary),
            objectHeaders: (obj) => this.objectHeaders(obj),
            extras: (state) => this.responseExtras(state),
          })
        : undefined;
    this.via = `1.1 ami-cdn-${o.config.region}`;
  }

  async start(): Promise<string> {
    this.listener = createHttpListener({
      name: `cdn ${this.o.config.region}`,
      log: this.o.log,
      handler: (req, res, target) => this.handle(req, res, target),
      // Fresh whole-object hits skip node:http's parser and response objects; anything else takes the usual path.
      fast: this.o.functions ? undefined : (r) => this.fastHit(r),
      limits: {
        maxConnections: this.o.config.maxConnections,
        maxConnectionsPerAddress: this.o.config.maxConnectionsPerAddress,
      },
    });
    const port = await this.listener.listen(this.o.config.port, this.o.config.host);
    this.upstreams.startHealthChecks(this.o.config.healthCheckMs);
    let last = this.stats.requests;
    this.rpsTimer = setInterval(() => {
      this.rps = this.stats.requests - last;
      last = this.stats.requests;
    }, 1000).unref();
    const h = this.o.config.host.includes(":") ? `[${this.o.config.host}]` : this.o.config.host;
    this.url = `http://${h}:${port}`;
    const tls = this.o.config.tls;
    if (tls) {
      const read = (f: string) => {
        try {
          return readFileSync(f);
        } catch (e) {
          throw new AmiError("AMI_INVALID_CONFIG", `'cdn.tls': cannot read ${f}: ${(e as Error).message}`);
        }
      };
      this.tlsListener = createHttpListener({
        name: `cdn ${this.o.config.region} tls`,
        log: this.o.log,
        handler: (req, res, target) => this.handle(req, res, target),
        tls: { cert: read(tls.certFile), key: read(tls.keyFile) },
        limits: {
          maxConnections: this.o.config.maxConnections,
          maxConnectionsPerAddress: this.o.config.maxConnectionsPerAddress,
        },
      });
      this.tlsUrl = `https://${h}:${await this.tlsListener.listen(tls.port, this.o.config.host)}`;
    }
    return this.url;
  }

  async close(): Promise<void> {
    this.upstreams.stop();
    clearInterval(this.rpsTimer);
    await this.listener?.close();
    await this.tlsListener?.close();
    await this.disk?.flush();
  }

  /** Time to first byte, p50/p99 over the last 1,024 requests (ms). */
  latency(): { p50: number; p99: number } {
    const n = Math.min(this.latencyN, this.latencies.length);
    if (n === 0) return { p50: 0, p99: 0 };
    const xs = Array.from(this.latencies.subarray(0, n)).sort((a, b) => a - b);
    return { p50: xs[Math.floor(n * 0.5)], p99: xs[Math.min(n - 1, Math.floor(n * 0.99))] };
  }

  statsJson(): Record<string, number | string> {
    const lat = this.latency();
    const lookups = this.stats.hits + this.stats.misses + this.stats.coalesced + this.stats.staleServed;
    return {
      region: this.o.config.region,
      ...this.stats,
      hitRatio: lookups ? (this.stats.hits + this.stats.staleServed + this.stats.coalesced) / lookups : 0,
      // Share of the bytes served that did not come from upstream.
      originOffload: this.stats.bytesServed ? Math.max(0, 1 - this.stats.bytesFromOrigin / this.stats.bytesServed) : 0,
      objects: this.tier.count,
      memoryBytes: this.tier.bytes,
      evictions: this.tier.evictions,
      diskObjects: this.disk?.count ?? 0,
      diskBytes: this.disk?.bytes ?? 0,
      diskEvictions: this.disk?.evictions ?? 0,
      inFlight: this.flights.size,
      upstreamFailovers: this.upstreams.failovers,
      healthyParents: this.upstreams.parents.filter((p) => p.healthy).length,
      originHealthy: this.upstreams.origin.healthy ? 1 : 0,
      reqPerSec: this.rps,
      p50Ms: lat.p50,
      p99Ms: lat.p99,
    };
  }

  purge(p: PurgeRequest): number {
    // An object is often in both tiers: the larger count is the number of objects named.
    const n = Math.max(this.tier.purge(p), this.disk?.purge(p) ?? 0);
    this.stats.purges++;
    this.stats.purgedObjects += n;
    return n;
  }

  private fastHit(r: FastRequest): Buffer | undefined {
    const h = r.headers;
    if (h.range || h["if-none-match"] || h["if-modified-since"] || h.cookie || h.authorization) return undefined;
    if (r.path === "/health" || r.path.startsWith("/_ami/")) return undefined;
    let target = r.path + r.search;
    if (needsSignature(this.o.config, r.path)) {
      const v = verifyTarget(this.o.config.signingSecret as string, target, Date.now());
      if (!v.ok) return undefined;
      target = v.target;
    }
    const url = normalisePath(target, this.o.config);
    const primary = keyOf(h.host, url);
    const simple = h["cache-control"] === undefined && h.pragma === undefined;
    for (const o of this.tier.lookup(primary)) {
      if (o.soft || !varyMatchesHeaders(o, h)) continue;
      const now = Date.now();
      if (simple && o.headers.vary === undefined) {
        // No request directives, no Vary: fresh is just "before expiry" (computed once per object).
        o.freshUntil ??= now + o.policy.timeToLive();
        if (now >= o.freshUntil) return undefined;
      } else {
        const ev = o.policy.evaluateRequest({ url, method: "GET", headers: h });
        if (!ev.response || ev.revalidation) return undefined;
      }
      this.stats.requests++;
      this.stats.hits++;
      // The answer's bytes change only with Age (whole seconds): built once per second per object.
      const sec = Math.floor(now / 1000);
      if (!o.wire || o.wireSec !== sec) {
        const headers = { ...this.objectHeaders(o), ...this.responseExtras("HIT") };
        let head = `HTTP/1.1 ${o.status} ${STATUS_CODES[o.status] ?? ""}\r\n`;
        for (const [k, v] of Object.entries(headers)) {
          if (k === "content-length") continue;
          for (const x of Array.isArray(v) ? v : [v]) head += `${k}: ${x}\r\n`;
        }
        head += `content-length: ${o.body.length}\r\naccept-ranges: bytes\r\n\r\n`;
        o.wire = Buffer.concat([Buffer.from(head, "latin1"), o.body]);
        o.wireSec = sec;
      }
      if (r.method === "HEAD") return o.wire.subarray(0, o.wire.length - o.body.length);
      this.stats.bytesServed += o.body.length;
      return o.wire;
    }
    return undefined;
  }

  private handle(req: IncomingMessage, res: ServerResponse, target: Target): unknown {
    const bad = smuggling(req);
    if (bad) {
      this.stats.rejected++;
      res.shouldKeepAlive = false;
      sendJson(res, 400, { errcode: "AMI_INVALID_INPUT", error: bad }, { Connection: "close" });
      return;
    }
    // The kit's parse: dot segments resolved (`/a/../private/x` is `/private/x`), so keys, signature checks and the
    // upstream request all see the path the origin will serve.
    let url = target.pathname + target.search;
    if (url === "/health") return sendJson(res, 200, { ok: true, region: this.o.config.region });
    if (url.startsWith("/_ami/")) return this.control(req, res, url);
    this.stats.requests++;
    const q = url.indexOf("?");
    if (needsSignature(this.o.config, q < 0 ? url : url.slice(0, q))) {
      const v = verifyTarget(this.o.config.signingSecret as string, url, Date.now());
      if (!v.ok) {
        this.stats.forbidden++;
        return sendJson(res, 403, { errcode: "M_FORBIDDEN", error: v.reason });
      }
      url = v.target;
    }
    const t0 = performance.now();
    res.once("finish", () => {
      this.latencies[this.latencyN++ % this.latencies.length] = performance.now() - t0;
    });
    return this.serve(req, res, url);
  }

  private async control(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    if (url === "/_ami/stats") return sendJson(res, 200, this.statsJson());
    if (url === "/_ami/metrics") {
      const lines: string[] = [];
      for (const [k, v] of Object.entries(this.statsJson()))
        if (typeof v === "number")
          lines.push(
            `ami_cdn_${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}{region="${this.o.config.region}"} ${v}`,
          );
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(`${lines.join("\n")}\n`);
      return;
    }
    if (url === "/_ami/purge" && req.method === "POST") {
      if (!this.mayPurge(req)) return sendJson(res, 403, { errcode: "M_FORBIDDEN", error: "purge not allowed" });
      const body = (await readJson(req, 1 << 20)) as PurgeRequest;
      const arr = (x: unknown) => Array.isArray(x) && x.every((s) => typeof s === "string" && s.length > 0);
      if (
        typeof body !== "object" ||
        body === null ||
        ![body.urls, body.prefixes, body.tags].every((x) => x === undefined || arr(x))
      )
        return sendJson(res, 400, {
          errcode: "AMI_INVALID_INPUT",
          error: "body must be { urls?: string[], prefixes?: string[], tags?: string[], soft?: boolean }",
        });
      const purged = this.purge({ ...body, soft: body.soft === true });
      return sendJson(res, 200, { region: this.o.config.region, purged, soft: body.soft === true });
    }
    sendJson(res, 404, { errcode: "M_NOT_FOUND", error: "no such control route" });
  }

  private mayPurge(req: IncomingMessage): boolean {
    const token = this.o.config.purgeToken;
    const h = req.headers.authorization ?? "";
    if (token) {
      const a = Buffer.from(h);
      const b = Buffer.from(`Bearer ${token}`);
      return a.length === b.length && timingSafeEqual(a, b);
    }
    const ra = req.socket.remoteAddress ?? "";
    return ra === "127.0.0.1" || ra === "::1" || ra === "::ffff:127.0.0.1";
  }

  private async serve(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const f = this.o.functions;
    if (f?.beforeCache && (await f.beforeCache(req, res))) return;
    const method = req.method ?? "GET";
    const cacheable =
      (method === "GET" || method === "HEAD") && req.headers.cookie === undefined && !req.headers.authorization;
    const primary = primaryKey(req.headers.host, url, this.o.config);
    if (!cacheable || (req.headers.range !== undefined && this.tooLarge.has(primary) && !this.slicer))
      return this.passThrough(req, res, url, primary);
    // From here on the normalised target: what the key says is what the upstream is asked for (RFC 9111 matching
    // compares URLs too).
    url = normalisePath(url, this.o.config);

    const reqLike = { url, method: "GET", headers: req.headers };
    let stale: CachedObject | null = null;
    let found = this.tier.lookup(primary);
    if (found.length === 0 && this.disk?.has(primary)) {
      // Evicted from memory, or stored before a restart: read back from the disk tier (and offered to memory).
      found = await this.disk.load(primary);
      for (const o of found) this.tier.put(o);
      if (found.length) this.stats.diskReads++;
    }
    for (const o of found) {
      if (!varyMatches(o, req)) continue;
      if (o.soft) {
        stale = o;
        continue;
      }
      const ev = o.policy.evaluateRequest(reqLike);
      // Expired (or must be revalidated): the same object, used for a conditional request and stale-if-error.
      if (!ev.response || ev.revalidation?.synchronous) {
        stale = o;
        continue;
      }
      if (!ev.revalidation) {
        this.stats.hits++;
        return this.reply(req, res, o, "HIT");
      }
      // stale-while-revalidate: this client gets the stale copy; one background revalidation refreshes it.
      this.stats.staleServed++;
      this.revalidate(req, url, primary, o).catch(() => {});
      return this.reply(req, res, o, "STALE");
    }
    if (stale) return this.revalidateForClient(req, res, url, primary, stale);
    if (this.slicer && sliceable(req.headers.range))
      return this.slicer.serve(req, res, url, primary).catch((e) => {
        if (e instanceof NoRanges) return this.miss(req, res, url, primary);
        res.destroy();
      });
    return this.miss(req, res, url, primary);
  }

  /** Identity of a flight: the key plus the request's values of the header names the origin varies on. */
  private flightId(primary: string, req: IncomingMessage): string {
    const names = this.varyNames.get(primary) ?? [];
    return `${primary}\n${names.map((n) => `${n}=${req.headers[n] ?? ""}`).join("\n")}`;
  }

  private upstreamHeaders(req: IncomingMessage, primary: string): Record<string, string> {
    const h: Record<string, string> = {};
    for (const n of [...FORWARDED, ...(this.varyNames.get(primary) ?? [])]) {
      const v = req.headers[n];
      if (typeof v === "string") h[n] = v;
    }
    h.via = this.via;
    return h;
  }

  private miss(req: IncomingMessage, res: ServerResponse, url: string, primary: string): void {
    const id = this.flightId(primary, req);
    let flight = this.flights.get(id);
    if (flight) {
      this.stats.coalesced++;
      flight.attach(req, res, this.responseExtras("COALESCED"), (n) => {
        this.stats.bytesServed += n;
      });
      return;
    }
    this.stats.misses++;
    flight = new Flight();
    this.flights.set(id, flight);
    // A body too large to store is not kept for late joiners either: they start their own fetch.
    flight.retainLimit = this.tier.maxObjectBytes;
    flight.onOverflow = (deferred) => {
      if (this.flights.get(id) === flight) this.flights.delete(id);
      if (this.tooLarge.size > 10_000) this.tooLarge.clear();
      this.tooLarge.add(primary);
      for (const w of deferred) this.passThrough(w.req, w.res, url, primary).catch(() => w.res.destroy());
    };
    flight.attach(req, res, this.responseExtras("MISS"), (n) => {
      this.stats.bytesServed += n;
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
      this.stats.originRequests++;
      ({ res: up } = await this.upstreams.fetch(
        { method: "GET", path: url, headers: headerStrings(headers), key: primary },
        req.headers.host ?? "",
      ));
    } catch (e) {
      this.stats.originErrors++;
      flight.fail(e as Error);
      return;
    }
    const status = up.statusCode ?? 502;
    const resHeaders = cleanHeaders(up.headers);
    mediaDefaults(url, status, resHeaders);
    if (status >= 500 && flight.staleFallback) {
      up.resume();
      this.stats.originErrors++;
      flight.fail(new Error(`upstream ${status}`));
      return;
    }
    if (cond && status === 304) {
      up.resume();
      const { policy, modified } = cond.policy.revalidatedPolicy(reqLike, { status, headers: up.headers });
      if (!modified) {
        this.stats.revalidated++;
        const o: CachedObject = {
          ...cond,
          freshUntil: undefined,
          wire: undefined,
          wireSec: undefined,
          policy,
          soft: false,
          headers: { ...cond.headers, ...pick304(resHeaders) },
        };
        this.tier.put(o);
        this.disk?.put(o);
        flight.complete(o.status, this.objectHeaders(o), o.body);
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
      (Number.isNaN(declared) || declared <= this.tier.maxObjectBytes);
    flight.begin(status, { ...resHeaders });
    const chunks: Buffer[] = [];
    let size = 0;
    let keep = storable;
    up.on("data", (c: Buffer) => {
      this.stats.bytesFromOrigin += c.length;
      if (keep) {
        size += c.length;
        if (size > this.tier.maxObjectBytes) {
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
            staleIfError: staleIfError(resHeaders, this.o.config.staleIfErrorSeconds),
          };
          this.tier.put(o);
          this.disk?.put(o);
        }
        flight.end();
        resolve();
      });
      up.on("close", () => resolve());
    });
  }

  /** A stale (or soft-purged) object: one conditional request; on upstream failure the stale copy if allowed. */
  private revalidateForClient(
    req: IncomingMessage,
    res: ServerResponse,
    url: string,
    primary: string,
    stale: CachedObject,
  ): void {
    const id = `${this.flightId(primary, req)}\nreval`;
    let flight = this.flights.get(id);
    const extras = this.responseExtras("REVALIDATED");
    const count = (n: number) => {
      this.stats.bytesServed += n;
    };
    const onFail = () => {
      if (this.usableOnError(stale)) {
        this.stats.staleServed++;
        this.reply(req, res, stale, "STALE");
        return true;
      }
      return false;
    };
    if (flight) {
      this.stats.coalesced++;
      flight.attach(req, res, extras, count, onFail);
      return;
    }
    this.stats.misses++;
    flight = new Flight();
    flight.staleFallback = this.usableOnError(stale);
    this.flights.set(id, flight);
    flight.attach(req, res, extras, count, onFail);
    this.fill(flight, req, url, primary, stale)
      .catch((e) => flight.fail(e as Error))
      .finally(() => this.flights.delete(id));
  }

  private async revalidate(req: IncomingMessage, url: string, primary: string, o: CachedObject): Promise<void> {
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

  private responseExtras(state: string): Record<string, string> {
    return { "x-cache": state, via: this.via };
  }

  private objectHeaders(o: CachedObject): Record<string, string | string[]> {
    const h = { ...o.headers, ...(o.policy.responseHeaders() as Record<string, string | string[]>) };
    for (const k of HOP) delete h[k];
    return h;
  }

  /** Answers from a stored object: conditional (304), Range (206/416) or whole. */
  private async reply(req: IncomingMessage, res: ServerResponse, o: CachedObject, state: string): Promise<void> {
    const headers = { ...this.objectHeaders(o), ...this.responseExtras(state) };
    const f = this.o.functions;
    if (f?.afterCache && (await f.afterCache(req, res, { status: o.status, headers, body: o.body }))) return;
    const etag = headers.etag;
    const inm = req.headers["if-none-match"];
    if (typeof inm === "string" && typeof etag === "string" && inm.split(/\s*,\s*/).includes(etag)) {
      this.stats.notModified++;
      delete headers["content-length"];
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const range = req.headers.range;
    if (o.status === 200 && typeof range === "string") {
      const r = parseRange(range, o.body.length);
      if (r === "unsatisfiable") {
        res.writeHead(416, { ...headers, "content-range": `bytes */${o.body.length}`, "content-length": "0" });
        res.end();
        return;
      }
      if (r) {
        const part = o.body.subarray(r[0], r[1] + 1);
        res.writeHead(206, {
          ...headers,
          "content-range": `bytes ${r[0]}-${r[1]}/${o.body.length}`,
          "content-length": String(part.length),
        });
        this.stats.bytesServed += part.length;
        res.end(req.method === "HEAD" ? undefined : part);
        return;
      }
    }
    headers["content-length"] = String(o.body.length);
    headers["accept-ranges"] = "bytes";
    res.writeHead(o.status, headers);
    this.stats.bytesServed += o.body.length;
    res.end(req.method === "HEAD" ? undefined : o.body);
  }

  /** Not cacheable (methods with bodies, cookies, credentials): streamed both ways; unsafe methods invalidate. */
  private async passThrough(req: IncomingMessage, res: ServerResponse, url: string, primary: string): Promise<void> {
    this.stats.bypass++;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (!HOP.has(k) && k !== "host" && v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
    headers.via = this.via;
    const hasBody = req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
    try {
      const { res: up } = await this.upstreams.fetch(
        { method: req.method ?? "GET", path: url, headers, key: primary, body: hasBody ? req : null },
        req.headers.host ?? "",
      );
      const status = up.statusCode ?? 502;
      if (!["GET", "HEAD", "OPTIONS"].includes(req.method ?? "") && status < 400) {
        this.tier.purge({ urls: [primary] });
        this.disk?.purge({ urls: [primary] });
      }
      res.writeHead(status, { ...cleanHeaders(up.headers), ...this.responseExtras("BYPASS") });
      up.pipe(res);
    } catch (e) {
      this.stats.originErrors++;
      sendJson(res, 502, { errcode: "AMI_UNAVAILABLE", error: `upstream failed: ${(e as Error).message}` });
    }
  }
}

/** CL+TE, more than one Content-Length, or a Transfer-Encoding other than chunked: a smuggling attempt. */
export function smuggling(req: IncomingMessage): string | null {
  let cl = 0;
  let te = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i].toLowerCase();
    if (n === "content-length") cl++;
    else if (n === "transfer-encoding") {
      te++;
      if (raw[i + 1].trim().toLowerCase() !== "chunked") return "unsupported Transfer-Encoding";
    }
  }
  if (cl > 1) return "duplicate Content-Length";
  if (te > 1) return "duplicate Transfer-Encoding";
  if (cl && te) return "both Content-Length and Transfer-Encoding";
  return null;
}

function cleanHeaders(h: IncomingMessage["headers"]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k)) out[k] = v;
  return out;
}

function headerStrings(h: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (typeof v === "string") out[k] = v;
  return out;
}

/** The headers a 304 may update (RFC 9111 §4.3.4: all but the framing ones). */
function pick304(h: Record<string, string | string[]>): Record<string, string | string[]> {
  const out = { ...h };
  delete out["content-length"];
  delete out["content-encoding"];
  delete out["content-type"];
  return out;
}

function varyMatches(o: CachedObject, req: IncomingMessage): boolean {
  return varyMatchesHeaders(o, req.headers);
}

function varyMatchesHeaders(o: CachedObject, headers: Record<string, string | string[] | undefined>): boolean {
  const v = o.headers.vary;
  if (typeof v !== "string") return true;
  const want = o.id.split("\n").slice(1);
  const names = v
    .toLowerCase()
    .split(/\s*,\s*/)
    .filter(Boolean);
  if (names.includes("*")) return false;
  return names.every((n, i) => want[i] === `${n}=${headers[n] ?? ""}`);
}

function staleIfError(h: Record<string, string | string[]>, dflt: number): number {
  const cc = typeof h["cache-control"] === "string" ? h["cache-control"] : "";
  const m = /(?:^|,)\s*stale-if-error\s*=\s*"?(\d+)/i.exec(cc);
  return m ? Number(m[1]) : dflt;
}
