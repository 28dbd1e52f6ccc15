/**
 * A small HTTP tracker (BEP 3 announce, BEP 23 compact, BEP 48 scrape) on the project's HTTP kit, so a .torrent
 * we publish can name us and any client finds our seeder. In memory; peers expire after two intervals. With
 * `open: false` it only tracks infohashes registered with `allow` (what this node publishes or fetches).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createHttpListener, type HttpListener } from "../core/http/server.ts";
import type { Target } from "../core/http/target.ts";
import type { Logger } from "../core/logger.ts";
import { encode } from "./bencode.ts";
import type { PeerAddress } from "./discovery.ts";
import { encodeCompact } from "./wire/extension.ts";

interface Entry extends PeerAddress {
  left: number;
  expires: number;
}

/** Raw bytes of each query parameter (info_hash is binary: URLSearchParams would read it as UTF-8). */
export function rawQuery(search: string): Map<string, Buffer[]> {
  const out = new Map<string, Buffer[]>();
  for (const part of search.replace(/^\?/, "").split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    const k = unescapeBytes(eq < 0 ? part : part.slice(0, eq)).toString("latin1");
    const v = unescapeBytes(eq < 0 ? "" : part.slice(eq + 1));
    const list = out.get(k) ?? [];
    list.push(v);
    out.set(k, list);
  }
  return out;
}

function unescapeBytes(s: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (c === "%" && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c === "+") bytes.push(0x20);
    else bytes.push(...Buffer.from(c, "utf8"));
  }
  return Buffer.from(bytes);
}

export interface TrackerOptions {
  log: Logger;
  intervalSec?: number;
  open?: boolean;
}

export class TrackerServer {
  readonly swarms = new Map<string, Map<string, Entry>>();
  private readonly allowed = new Set<string>();
  private readonly o: Required<TrackerOptions>;
  private listener: HttpListener | null = null;
  announces = 0;

  constructor(o: TrackerOptions) {
    this.o = { intervalSec: 60, open: true, ...o };
  }

  allow(infohash: Buffer): void {
    this.allowed.add(infohash.toString("hex"));
  }

  async listen(port: number, host: string): Promise<number> {
    this.listener = createHttpListener({
      name: "p2p tracker",
      log: this.o.log,
      handler: (req, res, t) => this.handle(req, res, t),
      limits: { maxConnectionsPerAddress: 200 },
    });
    return this.listener.listen(port, host);
  }

  async close(): Promise<void> {
    await this.listener?.close();
  }

  private reply(res: ServerResponse, body: Parameters<typeof encode>[0]): void {
    const b = encode(body);
    res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": b.length });
    res.end(b);
  }

  private handle(req: IncomingMessage, res: ServerResponse, t: Target): void {
    const q = rawQuery(t.search);
    if (t.pathname === "/announce") {
      this.announce(req, res, q);
      return;
    }
    if (t.pathname === "/scrape") {
      this.scrape(res, q);
      return;
    }
    res.writeHead(404).end();
  }

  private announce(req: IncomingMessage, res: ServerResponse, q: Map<string, Buffer[]>): void {
    const ih = q.get("info_hash")?.[0];
    const port = Number(q.get("port")?.[0]?.toString() ?? "");
    if (ih?.length !== 20) {
      this.reply(res, { "failure reason": "info_hash must be 20 bytes" });
      return;
    }
    if (!(port > 0 && port < 65536)) {
      this.reply(res, { "failure reason": "bad port" });
      return;
    }
    const hex = ih.toString("hex");
    if (!this.o.open && !this.allowed.has(hex)) {
      this.reply(res, { "failure reason": "unregistered torrent" });
      return;
    }
    this.announces++;
    const host = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
    const key = `${host}:${port}`;
    const now = Date.now();
    let swarm = this.swarms.get(hex);
    if (!swarm) {
      swarm = new Map();
      this.swarms.set(hex, swarm);
    }
    for (const [k, e] of swarm) if (e.expires < now) swarm.delete(k);
    const event = q.get("event")?.[0]?.toString();
    const left = Number(q.get("left")?.[0]?.toString() ?? "0") || 0;
    if (event === "stopped") swarm.delete(key);
    else swarm.set(key, { host, port, left, expires: now + this.o.intervalSec * 2000 });
    const want = Math.min(Number(q.get("numwant")?.[0]?.toString() ?? "50") || 50, 200);
    const others = [...swarm.entries()].filter(([k]) => k !== key).map(([, e]) => e);
    const peers = others.sort(() => Math.random() - 0.5).slice(0, want);
    const complete = [...swarm.values()].filter((e) => e.left === 0).length;
    this.reply(res, {
      interval: this.o.intervalSec,
      "min interval": Math.min(5, this.o.intervalSec),
      complete,
      incomplete: swarm.size - complete,
      peers: encodeCompact(peers),
      peers6: encodeCompact(peers, true),
    });
  }

  private scrape(res: ServerResponse, q: Map<string, Buffer[]>): void {
    const files: Record<string, Parameters<typeof encode>[0]> = {};
    const hashes = q.get("info_hash") ?? [...this.swarms.keys()].map((h) => Buffer.from(h, "hex"));
    for (const ih of hashes.slice(0, 100)) {
      const swarm = this.swarms.get(ih.toString("hex"));
      if (!swarm) continue;
      const complete = [...swarm.values()].filter((e) => e.left === 0).length;
      files[ih.toString("latin1")] = { complete, incomplete: swarm.size - complete, downloaded: 0 };
    }
    this.reply(res, { files });
  }
}
