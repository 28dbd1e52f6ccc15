/**
 * Request coalescing that streams: one upstream fetch per key, and every client that asks meanwhile is attached to
 * it and gets the status, headers and every byte received so far, then each new chunk as it arrives (nginx's
 * proxy_cache_lock makes them wait for the whole object instead). A Range request waits for the whole object and
 * is cut from it. If the fetch fails before headers, each waiter may fall back (stale-if-error) or gets 502.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { sendJson } from "../core/http/reply.ts";
import { parseRange } from "./range.ts";

type Headers = Record<string, string | string[]>;

interface Waiter {
  req: IncomingMessage;
  res: ServerResponse;
  extras: Record<string, string>;
  count: (bytes: number) => void;
  onFail?: () => boolean;
  started: boolean;
  /** Waits for the whole body (Range). */
  deferred: boolean;
}

export class Flight {
  status = 0;
  headers: Headers | null = null;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private error: Error | null = null;
  /** A stale copy can answer if the upstream fails or says 5xx. */
  staleFallback = false;
  private readonly waiters = new Set<Waiter>();
  /** Past this many bytes the chunks are no longer kept for late joiners (an object too large to store). */
  retainLimit = Number.POSITIVE_INFINITY;
  /**
   * Called once when the limit is passed, with the Range waiters (they needed the whole body, now not kept): the
   * owner stops offering this flight to new requests and serves those another way.
   */
  onOverflow: (deferred: { req: IncomingMessage; res: ServerResponse }[]) => void = () => {};
  private retaining = true;

  get waiting(): number {
    return this.waiters.size;
  }

  attach(
    req: IncomingMessage,
    res: ServerResponse,
    extras: Record<string, string>,
    count: (bytes: number) => void,
    onFail?: () => boolean,
  ): void {
    const w: Waiter = {
      req,
      res,
      extras,
      count,
      onFail,
      started: false,
      deferred: typeof req.headers.range === "string" && req.method !== "HEAD",
    };
    if (this.error) {
      this.failOne(w);
      return;
    }
    this.waiters.add(w);
    res.once("close", () => this.waiters.delete(w));
    if (this.headers) this.start(w);
  }

  begin(status: number, headers: Headers): void {
    this.status = status;
    this.headers = headers;
    for (const w of this.waiters) this.start(w);
  }

  push(c: Buffer): void {
    this.size += c.length;
    if (this.retaining) {
      if (this.size > this.retainLimit) {
        this.retaining = false;
        this.chunks.length = 0;
        const deferred = [...this.waiters].filter((w) => w.deferred);
        for (const w of deferred) this.waiters.delete(w);
        this.onOverflow(deferred);
      } else this.chunks.push(c);
    }
    for (const w of this.waiters)
      if (w.started && !w.deferred && w.req.method !== "HEAD") {
        w.res.write(c);
        w.count(c.length);
      }
  }

  end(): void {
    this.ended = true;
    for (const w of this.waiters) this.finish(w);
    this.waiters.clear();
  }

  /** A whole answer at once (a revalidated object). */
  complete(status: number, headers: Headers, body: Buffer): void {
    this.begin(status, headers);
    this.push(body);
    this.end();
  }

  fail(e: Error): void {
    if (this.error || this.ended) return;
    this.error = e;
    for (const w of this.waiters) this.failOne(w);
    this.waiters.clear();
  }

  private failOne(w: Waiter): void {
    if (w.started && !w.deferred) {
      // Headers already went out: the only honest signal left is a truncated response.
      w.res.destroy();
      return;
    }
    if (w.onFail?.()) return;
    const timeout = /timed out/.test(this.error?.message ?? "");
    sendJson(w.res, timeout ? 504 : 502, {
      errcode: timeout ? "AMI_TIMEOUT" : "AMI_UNAVAILABLE",
      error: `upstream failed: ${this.error?.message ?? "unknown"}`,
    });
  }

  private start(w: Waiter): void {
    if (w.deferred && this.status === 200) {
      if (this.ended) this.finish(w);
      return;
    }
    w.deferred = false;
    w.started = true;
    w.res.writeHead(this.status, { ...this.headers, ...w.extras });
    if (w.req.method === "HEAD") {
      w.res.end();
      return;
    }
    for (const c of this.chunks) {
      w.res.write(c);
      w.count(c.length);
    }
    if (this.ended) w.res.end();
  }

  private finish(w: Waiter): void {
    if (!w.deferred) {
      if (!w.started) this.start(w);
      else w.res.end();
      return;
    }
    const body = Buffer.concat(this.chunks, this.size);
    const r = parseRange(w.req.headers.range as string, body.length);
    const h: Headers = { ...this.headers, ...w.extras };
    delete h["transfer-encoding"];
    if (r === "unsatisfiable") {
      w.res.writeHead(416, { ...h, "content-range": `bytes */${body.length}`, "content-length": "0" });
      w.res.end();
    } else if (r) {
      const part = body.subarray(r[0], r[1] + 1);
      w.res.writeHead(206, {
        ...h,
        "content-range": `bytes ${r[0]}-${r[1]}/${body.length}`,
        "content-length": String(part.length),
      });
      w.res.end(part);
      w.count(part.length);
    } else {
      w.res.writeHead(this.status, { ...h, "content-length": String(body.length) });
      w.res.end(body);
      w.count(body.length);
    }
  }
}
