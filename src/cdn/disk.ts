/**
 * The disk tier: every object the node stores is also written (in the background) to the content-addressed store,
 * held there under `cdn:<region>`, and listed in an index file next to the node's data. An object the memory tier
 * evicted, or that a restarted node has not seen yet, is read back from it, so a warm cache survives a restart.
 * The tier has its own byte budget, evicted least recently used; an evicted object's hold is released (its bytes
 * go at the store's next `cas gc`, which also keeps what other users of the store still hold). Identical bodies
 * share one stored object (the store deduplicates; a hold is released when no entry uses it any more).
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import CachePolicy from "http-cache-semantics";
import type { CasStore } from "../cas/types.ts";
import type { Logger } from "../core/logger.ts";
import { type CachedObject, matchesPurge, type PurgeRequest } from "./store.ts";

interface Entry {
  id: string;
  primary: string;
  path: string;
  cas: string;
  size: number;
  status: number;
  headers: Record<string, string | string[]>;
  policy: CachePolicy.CachePolicyObject;
  tags: string[];
  soft: boolean;
  staleIfError: number;
}

export interface DiskTierOptions {
  store: CasStore;
  /** The index file (JSON), rewritten atomically after changes. */
  indexFile: string;
  maxBytes: number;
  hold: string;
  log: Logger;
}

export class DiskTier {
  /** Least recently used first (a Map keeps insertion order; a use re-inserts). */
  private readonly entries = new Map<string, Entry>();
  private readonly byPrimary = new Map<string, Set<string>>();
  private readonly casUsers = new Map<string, number>();
  bytes = 0;
  evictions = 0;
  reads = 0;
  writes = 0;
  private saveTimer: NodeJS.Timeout | undefined;
  /** Writes in progress (a second put of the same object waits for none: the last to finish wins). */
  private readonly pending = new Set<Promise<void>>();
  /** Purges since the oldest write in progress began (emptied when none is in progress). */
  private readonly recentPurges: PurgeRequest[] = [];
  private readonly o: DiskTierOptions;

  constructor(o: DiskTierOptions) {
    this.o = o;
    let list: Entry[] = [];
    try {
      list = JSON.parse(readFileSync(o.indexFile, "utf8")) as Entry[];
    } catch {
      // No index yet (or unreadable: start cold; the objects' holds stay until `cdn` evicts or an operator drops them).
    }
    for (const e of Array.isArray(list) ? list : []) if (e && typeof e.id === "string") this.add(e);
    this.trim();
  }

  get count(): number {
    return this.entries.size;
  }

  has(primary: string): boolean {
    return this.byPrimary.has(primary);
  }

  /** The stored variants of a primary key, read back whole (a failed read drops the entry). */
  async load(primary: string): Promise<CachedObject[]> {
    const out: CachedObject[] = [];
    for (const id of [...(this.byPrimary.get(primary) ?? [])]) {
      const e = this.entries.get(id);
      if (!e) continue;
      try {
        const parts: Buffer[] = [];
        for await (const c of this.o.store.get(e.cas)) parts.push(c);
        const body = Buffer.concat(parts);
        if (body.length !== e.size) throw new Error(`size ${body.length} != ${e.size}`);
        this.entries.delete(id);
        this.entries.set(id, e);
        this.reads++;
        out.push({
          id: e.id,
          primary: e.primary,
          path: e.path,
          status: e.status,
          headers: e.headers,
          body,
          policy: CachePolicy.fromObject(e.policy),
          tags: e.tags,
          soft: e.soft,
          staleIfError: e.staleIfError,
        });
      } catch (err) {
        this.o.log.warn("cdn disk tier: unreadable object dropped", { id, error: (err as Error).message });
        this.remove(id);
      }
    }
    return out;
  }

  /** Writes the object in the background; the memory tier answers meanwhile. */
  put(o: CachedObject): void {
    if (o.body.length > this.o.maxBytes) return;
    const since = this.recentPurges.length;
    const p = this.o.store
      .put(o.body, { hold: this.o.hold })
      .then((r) => {
        this.remove(o.id);
        // A purge that arrived while the bytes were being written applies to them too.
        const later = this.recentPurges.slice(since).filter((x) => matchesPurge(o, x));
        if (later.some((x) => !x.soft)) {
          if (!this.casUsers.has(r.id)) this.o.store.release(r.id, this.o.hold).catch(() => {});
          return;
        }
        this.add({
          id: o.id,
          primary: o.primary,
          path: o.path,
          cas: r.id,
          size: o.body.length,
          status: o.status,
          headers: o.headers,
          policy: o.policy.toObject(),
          tags: o.tags,
          soft: o.soft || later.length > 0,
          staleIfError: o.staleIfError,
        });
        this.writes++;
        this.trim();
        this.save();
      })
      .catch((e) => this.o.log.warn("cdn disk tier: write failed", { id: o.id, error: (e as Error).message }))
      .finally(() => {
        this.pending.delete(p);
        if (this.pending.size === 0) this.recentPurges.length = 0;
      });
    this.pending.add(p);
  }

  /** Resolves once the writes started so far are done (tests, shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.pending]);
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.saveTimer = undefined;
      this.saveNow();
    }
  }

  purge(p: PurgeRequest): number {
    if (this.pending.size > 0) this.recentPurges.push(p);
    let n = 0;
    for (const e of [...this.entries.values()]) {
      if (!matchesPurge(e, p)) continue;
      n++;
      if (p.soft) e.soft = true;
      else this.remove(e.id);
    }
    if (n) this.save();
    return n;
  }

  private add(e: Entry): void {
    this.entries.set(e.id, e);
    const s = this.byPrimary.get(e.primary) ?? new Set<string>();
    this.byPrimary.set(e.primary, s);
    s.add(e.id);
    this.casUsers.set(e.cas, (this.casUsers.get(e.cas) ?? 0) + 1);
    this.bytes += e.size;
  }

  private remove(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    const s = this.byPrimary.get(e.primary);
    s?.delete(id);
    if (s?.size === 0) this.byPrimary.delete(e.primary);
    this.bytes -= e.size;
    const users = (this.casUsers.get(e.cas) ?? 1) - 1;
    if (users > 0) this.casUsers.set(e.cas, users);
    else {
      this.casUsers.delete(e.cas);
      this.o.store.release(e.cas, this.o.hold).catch(() => {});
    }
    this.save();
  }

  private trim(): void {
    for (const id of this.entries.keys()) {
      if (this.bytes <= this.o.maxBytes) break;
      this.remove(id);
      this.evictions++;
    }
  }

  private save(): void {
    this.saveTimer ??= setTimeout(() => {
      this.saveTimer = undefined;
      this.saveNow();
    }, 200);
  }

  private saveNow(): void {
    try {
      writeFileSync(`${this.o.indexFile}.tmp`, JSON.stringify([...this.entries.values()]), { mode: 0o600 });
      renameSync(`${this.o.indexFile}.tmp`, this.o.indexFile);
    } catch (e) {
      this.o.log.warn("cdn disk tier: cannot write the index", { error: (e as Error).message });
    }
  }
}
