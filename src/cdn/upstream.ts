/**
 * Where a miss goes: the parents (shields) in rendezvous-hash order for the object's key, healthy ones only, then
 * the origin. A parent that fails to connect or answer in time is marked down and the next is tried; a health
 * check (`GET /health` every `healthCheckMs`) brings it back.
 */
import { createHash } from "node:crypto";
import { Agent, type IncomingMessage, request } from "node:http";

export interface Upstream {
  url: URL;
  parent: boolean;
  healthy: boolean;
}

export interface UpstreamRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** For the hash that picks the parent. */
  key: string;
  body?: AsyncIterable<Buffer> | null;
}

const agent = new Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64 });

function score(key: string, parent: string): number {
  return createHash("sha1").update(parent).update("\0").update(key).digest().readUInt32BE(0);
}

export class Upstreams {
  readonly parents: Upstream[];
  readonly origin: Upstream;
  private timer: NodeJS.Timeout | null = null;
  requests = 0;
  failovers = 0;

  private readonly timeoutMs: number;

  constructor(origin: string, parents: readonly string[], timeoutMs: number) {
    this.timeoutMs = timeoutMs;
    this.origin = { url: new URL(origin), parent: false, healthy: true };
    this.parents = parents.map((p) => ({ url: new URL(p), parent: true, healthy: true }));
  }

  startHealthChecks(everyMs: number): void {
    if (this.parents.length === 0) return;
    this.timer = setInterval(() => {
      for (const p of this.parents) {
        const r = request(new URL("/health", p.url), { agent, timeout: Math.min(everyMs, 2000) }, (res) => {
          res.resume();
          p.healthy = (res.statusCode ?? 500) < 500;
        });
        r.on("timeout", () => r.destroy(new Error("timeout")));
        r.on("error", () => {
          p.healthy = false;
        });
        r.end();
      }
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Healthy parents by rendezvous score for the key, then the origin. */
  order(key: string): Upstream[] {
    const ps = this.parents
      .filter((p) => p.healthy)
      .map((p) => ({ p, s: score(key, p.url.href) }))
      .sort((a, b) => b.s - a.s)
      .map((x) => x.p);
    return [...ps, this.origin];
  }

  /** The first upstream that answers with headers; connection errors and timeouts fail over. */
  async fetch(r: UpstreamRequest, host: string): Promise<{ res: IncomingMessage; via: Upstream }> {
    let last: unknown = null;
    const tries = this.order(r.key);
    for (const u of tries) {
      // A request body can be sent once: no failover for it.
      if (r.body && u !== tries[0]) break;
      try {
        this.requests++;
        const res = await this.once(u, r, host);
        if (!u.parent) this.origin.healthy = res.statusCode === undefined || res.statusCode < 500;
        return { res, via: u };
      } catch (e) {
        last = e;
        // The origin is never skipped (it is the last resort); its health is what the last request to it saw.
        if (!u.parent) this.origin.healthy = false;
        if (u.parent) {
          u.healthy = false;
          this.failovers++;
        }
      }
    }
    throw last ?? new Error("no upstream");
  }

  private once(u: Upstream, r: UpstreamRequest, host: string): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers = { ...r.headers, host: u.parent ? host : u.url.host };
      const req = request(
        {
          protocol: u.url.protocol,
          hostname: u.url.hostname,
          port: u.url.port,
          method: r.method,
          path: r.path,
          headers,
          agent,
        },
        (res) => {
          req.setTimeout(0);
          resolve(res);
        },
      );
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`upstream ${u.url.host} timed out`)));
      req.on("error", reject);
      if (r.body)
        (async () => {
          for await (const c of r.body as AsyncIterable<Buffer>)
            if (!req.write(c)) await new Promise((ok) => req.once("drain", ok));
          req.end();
        })().catch((e) => req.destroy(e));
      else req.end();
    });
  }
}
