/**
 * HTTP tracker client (BEP 3 announce, BEP 23 compact peers, BEP 7 peers6) as a PeerDiscovery: `announce`
 * tells the tracker about us (with the torrent's byte counts) and keeps the peers it answers; `lookup` yields
 * them. One instance per torrent and tracker URL.
 */
import { AmiError } from "../core/errors.ts";
import { type BValue, bget, decode } from "./bencode.ts";
import type { PeerAddress, PeerDiscovery } from "./discovery.ts";
import { decodeCompact } from "./wire/extension.ts";

export interface AnnounceStats {
  uploaded: number;
  downloaded: number;
  left: number;
}

export interface AnnounceReply {
  interval: number;
  peers: PeerAddress[];
  complete?: number;
  incomplete?: number;
}

/** Percent-encode raw bytes for a tracker query (BEP 3: every byte outside the unreserved set). */
export function escapeBytes(b: Buffer): string {
  let s = "";
  for (const x of b) {
    const c = String.fromCharCode(x);
    s += /[A-Za-z0-9.\-_~]/.test(c) ? c : `%${x.toString(16).padStart(2, "0")}`;
  }
  return s;
}

export async function announce(
  url: string,
  q: { infohash: Buffer; peerId: Buffer; port: number; event?: "started" | "completed" | "stopped" } & AnnounceStats,
  signal?: AbortSignal,
): Promise<AnnounceReply> {
  const sep = url.includes("?") ? "&" : "?";
  const query =
    `info_hash=${escapeBytes(q.infohash)}&peer_id=${escapeBytes(q.peerId)}&port=${q.port}` +
    `&uploaded=${q.uploaded}&downloaded=${q.downloaded}&left=${q.left}&compact=1&numwant=80` +
    (q.event ? `&event=${q.event}` : "");
  const timeout = AbortSignal.timeout(15_000);
  const res = await fetch(`${url}${sep}${query}`, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  const body = Buffer.from(await res.arrayBuffer());
  if (body.length > 1024 * 1024) throw new AmiError("AMI_INVALID_INPUT", "tracker: reply too large");
  let d: BValue;
  try {
    d = decode(body);
  } catch {
    throw new AmiError("AMI_UNAVAILABLE", `tracker ${url}: HTTP ${res.status}, not a bencoded reply`);
  }
  const failure = bget.str(d, "failure reason");
  if (failure) throw new AmiError("AMI_UNAVAILABLE", `tracker ${url}: ${failure}`);
  const raw = bget.list(d, "peers");
  const peers = raw
    ? raw.flatMap((p) => {
        const host = bget.str(p, "ip");
        const port = bget.int(p, "port");
        return host && port ? [{ host, port }] : [];
      })
    : decodeCompact(bget.bytes(d, "peers"));
  peers.push(...decodeCompact(bget.bytes(d, "peers6"), true));
  return {
    interval: bget.int(d, "interval") ?? 1800,
    peers,
    complete: bget.int(d, "complete"),
    incomplete: bget.int(d, "incomplete"),
  };
}

export class HttpTracker implements PeerDiscovery {
  readonly name: string;
  readonly url: string;
  private readonly peerId: Buffer;
  private readonly stats: () => AnnounceStats;
  private started = false;
  private peers: PeerAddress[] = [];
  private next = 0;

  constructor(url: string, peerId: Buffer, stats: () => AnnounceStats) {
    this.name = `tracker ${url}`;
    this.url = url;
    this.peerId = peerId;
    this.stats = stats;
  }

  async announce(infohash: Buffer, port: number, signal?: AbortSignal): Promise<void> {
    if (Date.now() < this.next) return;
    const reply = await announce(
      this.url,
      { infohash, peerId: this.peerId, port, event: this.started ? undefined : "started", ...this.stats() },
      signal,
    );
    this.started = true;
    this.peers = reply.peers;
    // Honour the tracker's interval, but look again soon while it had nobody to offer.
    this.next = Date.now() + (reply.peers.length ? Math.min(reply.interval, 300) * 1000 : 0);
  }

  async *lookup(): AsyncIterable<PeerAddress> {
    const peers = this.peers;
    this.peers = [];
    yield* peers;
  }
}
