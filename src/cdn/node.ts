/**
 * The edge node: a caching reverse proxy on the shared HTTP kit. GET/HEAD go through the memory tier with RFC 9111
 * rules (http-cache-semantics: freshness, `Vary`, revalidation, stale-while-revalidate) plus stale-if-error; a miss
 * is fetched once per key however many clients ask, and every waiter is streamed the bytes as they arrive
 * (flight.ts). Ranges are cut from stored objects. Purges (URL, prefix, surrogate key; soft or hard) arrive on
 * `POST /_ami/purge`. Only a fixed set of request headers, plus what the origin names in `Vary`, reaches the
 * upstream, so a header outside the key cannot shape a stored answer (cache poisoning).
 *
 * The concerns live in their own files: the hit path (hit.ts), misses, upstream fills, revalidation and
 * pass-through (fill.ts), the `/_ami/` endpoints (admin.ts), counters and metrics (stats.ts), header rules (wire.ts).
 *
 * Seam for edge functions (src/edge): `functions.beforeCache` may answer a request before the cache is consulted;
 * `functions.afterCache` may answer from a cached or fetched object (it gets the object's status, headers, body).
 */

import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { AmiError } from "../core/errors.ts";
import { sendJson } from "../core/http/reply.ts";
import { createHttpListener, type HttpListener } from "../core/http/server.ts";
import type { Target } from "../core/http/target.ts";
import type { Logger } from "../core/logger.ts";
import { control } from "./admin.ts";
import type { CdnConfig } from "./config.ts";
import type { DiskTier } from "./disk.ts";
import { Filler } from "./fill.ts";
import { fastHit, reply } from "./hit.ts";
import { normalisePath, primaryKey } from "./key.ts";
import { needsSignature, verifyTarget } from "./sign.ts";
import { NoRanges, Slicer, sliceable } from "./slice.ts";
import { type EdgeStats, Latencies, newStats } from "./stats.ts";
import { type CachedObject, MemoryTier, type PurgeRequest } from "./store.ts";
import { Upstreams } from "./upstream.ts";
import { objectHeaders, responseExtras, smuggling, varyMatches } from "./wire.ts";

export type { EdgeStats } from "./stats.ts";
export { smuggling } from "./wire.ts";

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

export class EdgeNode {
  readonly stats: EdgeStats = newStats();
  readonly tier: MemoryTier;
  readonly upstreams: Upstreams;
  readonly disk: DiskTier | undefined;
  private readonly slicer: Slicer | undefined;
  private readonly filler: Filler;
  private readonly latencies = new Latencies();
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
    this.via = `1.1 ami-cdn-${o.config.region}`;
    this.filler = new Filler({
      config: o.config,
      stats: this.stats,
      tier: this.tier,
      disk: this.disk,
      upstreams: this.upstreams,
      via: this.via,
      reply: (req, res, obj, state) => this.reply(req, res, obj, state),
    });
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
            upstreamHeaders: (req, primary) => this.filler.upstreamHeaders(req, primary),
            objectHeaders: (obj) => objectHeaders(obj),
            extras: (state) => responseExtras(state, this.via),
          })
        : undefined;
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
        http2: tls.http2,
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
    return this.latencies.percentiles();
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
      inFlight: this.filler.flights.size,
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
  get functions(): EdgeFunctionSeam | undefined {
    return this.o.functions;
  }

  get config(): CdnConfig {
    return this.o.config;
  }

  private fastHit(r: Parameters<typeof fastHit>[1]): Buffer | undefined {
    return fastHit(this, r);
  }

  private reply(req: IncomingMessage, res: ServerResponse, o: CachedObject, state: string): Promise<void> {
    return reply(this, req, res, o, state);
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
    if (url.startsWith("/_ami/")) return control(this, req, res, url);
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
      this.latencies.record(performance.now() - t0);
    });
    return this.serve(req, res, url);
  }

  private async serve(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const f = this.o.functions;
    if (f?.beforeCache && (await f.beforeCache(req, res))) return;
    const method = req.method ?? "GET";
    const cacheable =
      (method === "GET" || method === "HEAD") && req.headers.cookie === undefined && !req.headers.authorization;
    const primary = primaryKey(req.headers.host, url, this.o.config);
    if (!cacheable || (req.headers.range !== undefined && this.filler.tooLarge.has(primary) && !this.slicer))
      return this.filler.passThrough(req, res, url, primary);
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
      this.filler.revalidate(req, url, primary, o).catch(() => {});
      return this.reply(req, res, o, "STALE");
    }
    if (stale) return this.filler.revalidateForClient(req, res, url, primary, stale);
    if (this.slicer && sliceable(req.headers.range))
      return this.slicer.serve(req, res, url, primary).catch((e) => {
        if (e instanceof NoRanges) return this.filler.miss(req, res, url, primary);
        res.destroy();
      });
    return this.filler.miss(req, res, url, primary);
  }
}
