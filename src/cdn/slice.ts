/**
 * Range slices (nginx `slice`): with `cdn.sliceBytes` set, a Range request for an object the node does not hold
 * whole is served from fixed-size slices, each fetched from upstream with its own `Range: bytes=a-b`, cached as an
 * object of its own (key `<primary>#slice=<n>`, same path and tags, so purges take them too) and coalesced while
 * in flight. A Range request on a cold 1 GB object costs the slices it touches, not the gigabyte. The first slice
 * gives the total size (Content-Range) that the client's range is resolved against; later slices must agree on
 * size and validator, or the answer is cut short (the object changed underneath) and the slices are dropped. An
 * origin that ignores Range (200) gets the ordinary whole-object path.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import CachePolicy from "http-cache-semantics";
import { sendJson } from "../core/http/reply.ts";
import type { DiskTier } from "./disk.ts";
import { parseRange } from "./range.ts";
import { type CachedObject, type MemoryTier, tagsOf } from "./store.ts";
import type { Upstreams } from "./upstream.ts";

export interface SliceHost {
  tier: MemoryTier;
  disk: DiskTier | undefined;
  upstreams: Upstreams;
  sliceBytes: number;
  stats: { hits: number; misses: number; originRequests: number; originErrors: number; bytesFromOrigin: number };
  countServed(n: number): void;
  upstreamHeaders(req: IncomingMessage, primary: string): Record<string, string>;
  objectHeaders(o: CachedObject): Record<string, string | string[]>;
  extras(state: string): Record<string, string>;
}

/** Thrown when the origin does not answer ranges: the caller serves the request the ordinary way. */
export class NoRanges extends Error {}

interface Slice {
  o: CachedObject;
  total: number;
  validator: string;
  fromCache: boolean;
}

const SINGLE = /^bytes=(\d{0,20})-(\d{0,20})$/;

/** A single-range request the slicer can take (several ranges or odd units: the ordinary path decides). */
export function sliceable(range: string | undefined): boolean {
  if (range === undefined) return false;
  const m = SINGLE.exec(range.trim());
  return m !== null && (m[1] !== "" || m[2] !== "");
}

export class Slicer {
  private readonly inFlight = new Map<string, Promise<Omit<Slice, "fromCache">>>();
  /** Total sizes learnt per key: a range past the end is refused without asking upstream again. */
  private readonly totals = new Map<string, number>();
  private readonly h: SliceHost;

  constructor(h: SliceHost) {
    this.h = h;
  }

  /** Serves `req` (a sliceable Range request) from slices; rejects with NoRanges before anything is written. */
  async serve(req: IncomingMessage, res: ServerResponse, url: string, primary: string): Promise<void> {
    const S = this.h.sliceBytes;
    const m = SINGLE.exec((req.headers.range as string).trim()) as RegExpExecArray;
    // The slice holding the range's first byte tells the size (a suffix range starts from slice 0 to learn it).
    const firstIndex = m[1] === "" ? 0 : Math.floor(Math.min(Number(m[1]), Number.MAX_SAFE_INTEGER) / S);
    const known = this.totals.get(primary);
    if (known !== undefined && m[1] !== "" && Number(m[1]) >= known) {
      res.writeHead(416, { "content-range": `bytes */${known}`, "content-length": "0", ...this.h.extras("HIT") });
      res.end();
      return;
    }
    let first: Slice;
    try {
      first = await this.slice(req, url, primary, firstIndex);
    } catch (e) {
      if (e instanceof NoRanges || e instanceof Unsatisfiable) {
        if (e instanceof Unsatisfiable) {
          this.learn(primary, e.total);
          res.writeHead(416, {
            "content-range": `bytes */${e.total}`,
            "content-length": "0",
            ...this.h.extras("MISS"),
          });
          res.end();
          return;
        }
        throw e;
      }
      this.h.stats.originErrors++;
      sendJson(res, 502, { errcode: "AMI_UNAVAILABLE", error: `upstream failed: ${(e as Error).message}` });
      return;
    }
    const total = first.total;
    this.learn(primary, total);
    const r = parseRange(req.headers.range as string, total);
    if (r === null || r === "unsatisfiable") {
      res.writeHead(416, { "content-range": `bytes */${total}`, "content-length": "0", ...this.h.extras("HIT") });
      res.end();
      return;
    }
    const [start, end] = r;
    if (first.fromCache) this.h.stats.hits++;
    else this.h.stats.misses++;
    const headers = this.h.objectHeaders(first.o);
    delete headers["content-range"];
    res.writeHead(206, {
      ...headers,
      ...this.h.extras(first.fromCache ? "HIT" : "MISS"),
      "content-range": `bytes ${start}-${end}/${total}`,
      "content-length": String(end - start + 1),
      "accept-ranges": "bytes",
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    for (let i = Math.floor(start / S); i <= Math.floor(end / S); i++) {
      if (res.destroyed) return;
      let s: Slice;
      try {
        s = i === firstIndex ? first : await this.slice(req, url, primary, i);
      } catch {
        res.destroy();
        return;
      }
      if (s.total !== total || s.validator !== first.validator) {
        // The object changed between slices: what was sent cannot be completed consistently.
        this.drop(primary, Math.ceil(total / S));
        res.destroy();
        return;
      }
      const base = i * S;
      const part = s.o.body.subarray(Math.max(0, start - base), Math.min(s.o.body.length, end - base + 1));
      this.h.countServed(part.length);
      if (!res.write(part)) await new Promise((ok) => res.once("drain", ok).once("close", ok));
    }
    res.end();
  }

  private learn(primary: string, total: number): void {
    if (this.totals.size >= 10_000) this.totals.clear();
    this.totals.set(primary, total);
  }

  private drop(primary: string, n: number): void {
    this.totals.delete(primary);
    for (let i = 0; i < n && i < 1_000_000; i++) {
      const id = `${primary}#slice=${i}`;
      this.h.tier.delete(id);
    }
  }

  /** Slice `i` from memory, disk or upstream (one fetch per slice however many ask). */
  private async slice(req: IncomingMessage, url: string, primary: string, i: number): Promise<Slice> {
    const key = `${primary}#slice=${i}`;
    const reqLike = { url, method: "GET", headers: req.headers };
    let found = this.h.tier.lookup(key);
    if (found.length === 0 && this.h.disk?.has(key)) {
      found = await this.h.disk.load(key);
      for (const o of found) this.h.tier.put(o);
    }
    for (const o of found) {
      if (o.soft) continue;
      const ev = o.policy.evaluateRequest(reqLike);
      if (ev.response && !ev.revalidation) return { ...describe(o), fromCache: true };
    }
    let p = this.inFlight.get(key);
    if (!p) {
      p = this.fetch(req, url, primary, i).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    return { ...(await p), fromCache: false };
  }

  private async fetch(
    req: IncomingMessage,
    url: string,
    primary: string,
    i: number,
  ): Promise<Omit<Slice, "fromCache">> {
    const S = this.h.sliceBytes;
    const headers = { ...this.h.upstreamHeaders(req, primary), range: `bytes=${i * S}-${(i + 1) * S - 1}` };
    this.h.stats.originRequests++;
    const { res: up } = await this.h.upstreams.fetch(
      { method: "GET", path: url, headers, key: primary },
      req.headers.host ?? "",
    );
    const status = up.statusCode ?? 502;
    const cr = typeof up.headers["content-range"] === "string" ? up.headers["content-range"] : "";
    if (status === 416) {
      up.resume();
      const t = /\/(\d+)$/.exec(cr);
      throw new Unsatisfiable(t ? Number(t[1]) : 0);
    }
    const got = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(cr);
    if (status !== 206 || !got || Number(got[1]) !== i * S) {
      up.resume();
      if (status >= 500) throw new Error(`upstream ${status}`);
      throw new NoRanges();
    }
    const want = Number(got[2]) - Number(got[1]) + 1;
    if (want > S) {
      up.destroy();
      throw new Error("upstream slice larger than asked");
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of up as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > want) {
        up.destroy();
        throw new Error("upstream slice longer than its Content-Range");
      }
      chunks.push(c);
    }
    if (size !== want) throw new Error("upstream slice ended early");
    this.h.stats.bytesFromOrigin += size;
    const resHeaders: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(up.headers)) if (v !== undefined) resHeaders[k] = v;
    // Freshness as for the whole object: the rules know 200, not 206.
    const asWhole = { ...resHeaders };
    delete asWhole["content-range"];
    const policy = new CachePolicy(
      { url, method: "GET", headers: req.headers },
      { status: 200, headers: asWhole },
      { shared: true },
    );
    const o: CachedObject = {
      id: `${primary}#slice=${i}`,
      primary: `${primary}#slice=${i}`,
      path: url,
      status: 206,
      headers: resHeaders,
      body: Buffer.concat(chunks, size),
      policy,
      tags: tagsOf(resHeaders),
      soft: false,
      staleIfError: 0,
    };
    if (policy.storable() && !resHeaders["set-cookie"]) {
      this.h.tier.put(o);
      this.h.disk?.put(o);
    }
    return describe(o);
  }
}

class Unsatisfiable extends Error {
  readonly total: number;
  constructor(total: number) {
    super("range not satisfiable");
    this.total = total;
  }
}

function describe(o: CachedObject): Omit<Slice, "fromCache"> {
  const cr = String(o.headers["content-range"] ?? "");
  const etag = o.headers.etag ?? o.headers["last-modified"] ?? "";
  return { o, total: Number(/\/(\d+)$/.exec(cr)?.[1] ?? 0), validator: String(etag) };
}
