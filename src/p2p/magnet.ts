/**
 * Magnet links (BEP 9, BEP 52): `xt=urn:btih:<40 hex | 32 base32>` (v1), `xt=urn:btmh:1220<64 hex>` (v2, a
 * sha2-256 multihash), `dn` (name), `tr` (trackers), `x.pe` (peers to ask, host:port).
 */
import { AmiError } from "../core/errors.ts";
import type { PeerAddress } from "./discovery.ts";
import type { Metainfo } from "./metainfo.ts";

export interface Magnet {
  infohashV1?: Buffer;
  /** Full 32-byte SHA-256 infohash. */
  infohashV2?: Buffer;
  name?: string;
  trackers: string[];
  peers: PeerAddress[];
}

const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32(s: string): Buffer {
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const c of s.toUpperCase()) {
    const i = B32.indexOf(c);
    if (i < 0) throw new AmiError("AMI_INVALID_INPUT", "magnet: bad base32 infohash");
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** host:port, [v6]:port; undefined when malformed. */
export function parseHostPort(s: string): PeerAddress | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:[\]]+):(\d{1,5})$/.exec(s);
  const port = Number(m?.[2]);
  if (!m?.[1] || !(port > 0 && port < 65536)) return undefined;
  return { host: m[1], port };
}

export function parseMagnet(uri: string): Magnet {
  if (!uri.startsWith("magnet:?")) throw new AmiError("AMI_INVALID_INPUT", "not a magnet link (magnet:?...)");
  const q = new URLSearchParams(uri.slice("magnet:?".length));
  const m: Magnet = { trackers: [], peers: [] };
  for (const [k, v] of q) {
    if (k === "xt" || /^xt\.\d+$/.test(k)) {
      const lower = v.toLowerCase();
      if (lower.startsWith("urn:btih:")) {
        const h = v.slice(9);
        if (/^[0-9a-fA-F]{40}$/.test(h)) m.infohashV1 = Buffer.from(h, "hex");
        else if (/^[A-Za-z2-7]{32}$/.test(h)) m.infohashV1 = base32(h);
        else throw new AmiError("AMI_INVALID_INPUT", "magnet: btih must be 40 hex or 32 base32 characters");
      } else if (lower.startsWith("urn:btmh:")) {
        const h = v.slice(9);
        if (!/^1220[0-9a-fA-F]{64}$/.test(h))
          throw new AmiError("AMI_INVALID_INPUT", "magnet: btmh must be a sha2-256 multihash (1220 + 64 hex)");
        m.infohashV2 = Buffer.from(h.slice(4), "hex");
      }
    } else if (k === "dn") m.name = v;
    else if (k === "tr" || /^tr\.\d+$/.test(k)) m.trackers.push(v);
    else if (k === "x.pe") {
      const p = parseHostPort(v);
      if (p) m.peers.push(p);
    }
  }
  if (!m.infohashV1 && !m.infohashV2) throw new AmiError("AMI_INVALID_INPUT", "magnet: no urn:btih or urn:btmh");
  return m;
}

const enc = (s: string): string => encodeURIComponent(s);

export function formatMagnet(m: Magnet): string {
  const parts: string[] = [];
  if (m.infohashV1) parts.push(`xt=urn:btih:${m.infohashV1.toString("hex")}`);
  if (m.infohashV2) parts.push(`xt=urn:btmh:1220${m.infohashV2.toString("hex")}`);
  if (m.name) parts.push(`dn=${enc(m.name)}`);
  for (const t of m.trackers) parts.push(`tr=${enc(t)}`);
  for (const p of m.peers) parts.push(`x.pe=${p.host.includes(":") ? `[${p.host}]` : p.host}:${p.port}`);
  return `magnet:?${parts.join("&")}`;
}

export function magnetOf(meta: Metainfo, peers: PeerAddress[] = []): string {
  return formatMagnet({
    infohashV1: meta.infohashV1,
    infohashV2: meta.infohashV2,
    name: meta.name,
    trackers: meta.trackers.flat(),
    peers,
  });
}

/** The 20-byte wire id of a magnet. */
export const magnetWireHash = (m: Magnet): Buffer => m.infohashV1 ?? (m.infohashV2 as Buffer).subarray(0, 20);
