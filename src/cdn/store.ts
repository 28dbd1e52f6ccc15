/**
 * The memory tier: cached responses by key, their `Vary` variants, and the indexes purges use (surrogate keys,
 * paths). Which objects stay is W-TinyLFU's call (wtinylfu.ts), weighted by bytes.
 */
import type CachePolicy from "http-cache-semantics";
import { WTinyLfuPolicy } from "./wtinylfu.ts";

export interface CachedObject {
  /** primary key + "\n" + the Vary'd request header values. */
  id: string;
  primary: string;
  /** Path + normalised query (for purge by URL and prefix). */
  path: string;
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  policy: CachePolicy;
  tags: string[];
  /** Soft-purged: stale from now on (revalidated before use, still usable under stale-if-error / -while-revalidate). */
  soft: boolean;
  /** Seconds past expiry it may be served while the origin fails. */
  staleIfError: number;
  /** Fast path: when it stops being fresh (ms), and its whole answer as bytes for the second `wireSec` (Age). */
  freshUntil?: number;
  wire?: Buffer;
  wireSec?: number;
}

export interface PurgeRequest {
  urls?: string[];
  prefixes?: string[];
  tags?: string[];
  /** Mark stale instead of dropping. */
  soft?: boolean;
}

export function tagsOf(headers: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = [];
  const sk = headers["surrogate-key"];
  if (typeof sk === "string") out.push(...sk.split(/\s+/));
  const ct = headers["cache-tag"];
  if (typeof ct === "string") out.push(...ct.split(","));
  return [...new Set(out.map((t) => t.trim()).filter(Boolean))];
}

/** The path part of a primary key (it starts with the host). */
const pathOfKey = (primary: string): string => primary.slice(Math.max(0, primary.indexOf("/")));

export class MemoryTier {
  private readonly objects = new Map<string, CachedObject>();
  private readonly variants = new Map<string, Set<string>>();
  private readonly byTag = new Map<string, Set<string>>();
  readonly policy: WTinyLfuPolicy;
  readonly maxObjectBytes: number;
  evictions = 0;

  constructor(maxBytes: number, maxObjectBytes: number) {
    // Expected objects ~ bytes / 16 KiB: sizes the frequency sketch and the climber's sample (10 × that requests).
    this.policy = new WTinyLfuPolicy(maxBytes, Math.max(1024, Math.floor(maxBytes / 16384)), { adaptive: true });
    this.maxObjectBytes = Math.min(maxObjectBytes, maxBytes);
  }

  get bytes(): number {
    return this.policy.bytes;
  }
  get count(): number {
    return this.objects.size;
  }

  /** The variants stored under a primary key (an access for the admission sketch). */
  lookup(primary: string): CachedObject[] {
    const ids = this.variants.get(primary);
    if (!ids) {
      this.policy.access(primary);
      return [];
    }
    const out: CachedObject[] = [];
    for (const id of ids) {
      const o = this.objects.get(id);
      if (o) {
        this.policy.access(id);
        out.push(o);
      }
    }
    return out;
  }

  put(o: CachedObject): boolean {
    this.delete(o.id);
    this.objects.set(o.id, o);
    const v = this.variants.get(o.primary) ?? new Set<string>();
    this.variants.set(o.primary, v);
    v.add(o.id);
    for (const t of o.tags) {
      const s = this.byTag.get(t) ?? new Set<string>();
      this.byTag.set(t, s);
      s.add(o.id);
    }
    const evicted = this.policy.insert(o.id, o.body.length + 512);
    for (const id of evicted) {
      this.drop(id);
      if (id !== o.id) this.evictions++;
    }
    return this.objects.has(o.id);
  }

  delete(id: string): void {
    this.policy.remove(id);
    this.drop(id);
  }

  private drop(id: string): void {
    const o = this.objects.get(id);
    if (!o) return;
    this.objects.delete(id);
    const v = this.variants.get(o.primary);
    v?.delete(id);
    if (v?.size === 0) this.variants.delete(o.primary);
    for (const t of o.tags) {
      const s = this.byTag.get(t);
      s?.delete(id);
      if (s?.size === 0) this.byTag.delete(t);
    }
  }

  /** Returns how many objects were purged (dropped, or marked stale when soft). */
  purge(p: PurgeRequest): number {
    const hit = new Set<string>();
    for (const t of p.tags ?? []) for (const id of this.byTag.get(t) ?? []) hit.add(id);
    if (p.urls?.length || p.prefixes?.length)
      for (const o of this.objects.values()) if (matchesPurge(o, { urls: p.urls, prefixes: p.prefixes })) hit.add(o.id);
    for (const id of hit) {
      if (p.soft) {
        const o = this.objects.get(id);
        if (o) o.soft = true;
      } else this.delete(id);
    }
    return hit.size;
  }
}

/** Whether a purge names an object (by tag, URL or path, or prefix); shared by the memory and disk tiers. */
export function matchesPurge(o: { primary: string; path: string; tags: string[] }, p: PurgeRequest): boolean {
  if (p.tags?.some((t) => o.tags.includes(t))) return true;
  if (p.urls?.some((u) => (u.startsWith("/") ? o.path === u : o.primary === pathOrKey(u) || o.primary === u)))
    return true;
  return p.prefixes?.some((x) => (x.startsWith("/") ? o.path.startsWith(x) : o.primary.startsWith(x))) ?? false;
}

/** `http://Host/x` → `host/x` (a primary key); anything else unchanged. */
function pathOrKey(u: string): string {
  try {
    const url = new URL(u);
    return `${url.host.toLowerCase()}${url.pathname}${url.search}`;
  } catch {
    return u;
  }
}

export { pathOfKey };
