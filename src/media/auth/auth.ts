/**
 * Who may publish to and read from a stream path. Rules come from `media.paths` (globs; an exact name wins,
 * otherwise the matching pattern with the most literal characters); the default is publish with a stream key,
 * read by anyone. With `media.authHook` set, the hook decides instead of keys and signatures (a `none` rule
 * still denies): POST {action, path, protocol, ip, key} -> 2xx allows, anything else, an error or a timeout denies.
 */
import { isIP } from "node:net";
import type { MediaConfig } from "../../config.ts";
import type { Logger } from "../../core/logger.ts";
import { KeyStore } from "./keys.ts";
import { Signer } from "./sign.ts";

export type PublishRule = "key" | "any" | "none";
export type ReadRule = "any" | "signed" | "none";
export interface PathRule {
  publish: PublishRule;
  read: ReadRule;
}

export interface AccessRequest {
  action: "publish" | "read";
  path: string;
  protocol: string;
  /** The client's address (IPv4-mapped IPv6 is fine). */
  ip: string;
  /** A presented stream key (publish) or key query parameter. */
  key?: string;
  /** The request query (read: `exp` and `sig`). */
  query?: URLSearchParams;
}

export type Decision = { ok: true } | { ok: false; status: 401 | 403; reason: string };

export type AuthConfig = Pick<MediaConfig, "paths" | "authHook" | "authHookTimeoutMs" | "trustLoopbackPublishers">;

const DEFAULT_RULE: PathRule = { publish: "key", read: "any" };
const HOOK_CACHE_MS = 5000;
const HOOK_CACHE_MAX = 1000;

/** `*` matches within one path segment, `**` across segments. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") re += "[^/]*";
    else re += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

export function isLoopbackIp(ip: string): boolean {
  const a = ip.startsWith("::ffff:") ? ip.slice(7) : ip;
  return a === "::1" || (isIP(a) === 4 && a.startsWith("127."));
}

/** Values by path glob, looked up as media.paths is: an exact name wins, then the match with the most literal characters. */
interface GlobEntry<T> {
  glob: string;
  re: RegExp;
  literal: number;
  value: T;
}

export class PathGlobs<T> {
  readonly #entries: GlobEntry<T>[];

  constructor(byGlob: Record<string, T>) {
    this.#entries = Object.entries(byGlob).map(([glob, value]) => ({
      glob,
      re: globToRegExp(glob),
      literal: glob.replace(/\*/g, "").length,
      value,
    }));
  }

  get(path: string): T | undefined {
    const exact = this.#entries.find((r) => r.glob === path);
    if (exact) return exact.value;
    let best: GlobEntry<T> | undefined;
    for (const r of this.#entries) if (r.re.test(path) && (!best || r.literal > best.literal)) best = r;
    return best?.value;
  }
}

const deny = (status: 401 | 403, reason: string): Decision => ({ ok: false, status, reason });

export class MediaAuth {
  readonly keys: KeyStore;
  readonly signer: Signer;
  readonly #c: AuthConfig;
  readonly #rules: PathGlobs<PathRule>;
  readonly #log: Logger;
  /**
   * The path whose read rule and signature cover `path` (an ABR rendition is read as its source: a signed
   * source's master playlist carries one signature for every rendition); undefined: the path itself.
   */
  readAs: (path: string) => string | undefined = () => undefined;
  readonly #hookCache = new Map<string, { at: number; d: Decision }>();

  constructor(c: AuthConfig, dataDir: string, log: Logger) {
    this.#c = c;
    this.#log = log;
    this.keys = new KeyStore(dataDir);
    this.signer = new Signer(dataDir);
    const rules: Record<string, PathRule> = {};
    // Only the permissions: an entry also carries its ABR ladder (abr/abr.ts reads that).
    for (const [glob, r] of Object.entries(c.paths))
      rules[glob] = { publish: r.publish ?? DEFAULT_RULE.publish, read: r.read ?? DEFAULT_RULE.read };
    this.#rules = new PathGlobs(rules);
  }

  rule(path: string): PathRule {
    return this.#rules.get(path) ?? DEFAULT_RULE;
  }

  /**
   * True when anyone may read `path` with no question asked (its rule is `any`, no auth hook): `check` would allow
   * every read of it, so a caller on a hot path (playlists, segments) may skip it.
   */
  readOpen(path: string): boolean {
    return !this.#c.authHook && this.rule(this.readAs(path) ?? path).read === "any";
  }

  async check(a: AccessRequest): Promise<Decision> {
    const d = await this.#decide(a);
    if (!d.ok) this.#log.warn("media access denied", { ...a, key: a.key ? "(given)" : undefined, query: undefined });
    return d;
  }

  async #decide(req: AccessRequest): Promise<Decision> {
    const a = req.action === "read" ? { ...req, path: this.readAs(req.path) ?? req.path } : req;
    const rule = this.rule(a.path);
    if (a.action === "publish") {
      if (rule.publish === "none") return deny(403, `publishing to '${a.path}' is disabled`);
      if (this.#c.authHook) return this.#hook(a);
      if (rule.publish === "any") return { ok: true };
      if (a.key) return this.keys.valid(a.key, a.path) ? { ok: true } : deny(403, `wrong stream key for '${a.path}'`);
      if (this.#c.trustLoopbackPublishers && isLoopbackIp(a.ip)) return { ok: true };
      return deny(401, `publishing to '${a.path}' needs a stream key (ami-streams stream key create --path ${a.path})`);
    }
    if (rule.read === "none") return deny(403, `reading '${a.path}' is disabled`);
    if (this.#c.authHook) return this.#hook(a);
    if (rule.read === "any") return { ok: true };
    const s = this.signer.check(a.path, a.query ?? new URLSearchParams());
    if (s === "ok") return { ok: true };
    if (s === "missing") return deny(401, `'${a.path}' needs a signed URL (ami-streams stream sign --path ${a.path})`);
    return deny(403, s === "expired" ? "the signed URL has expired" : "bad signature");
  }

  async #hook(a: AccessRequest): Promise<Decision> {
    const body = JSON.stringify({ action: a.action, path: a.path, protocol: a.protocol, ip: a.ip, key: a.key ?? null });
    const now = Date.now();
    const hit = this.#hookCache.get(body);
    // Players fetch a segment or part every few hundred ms; one answer covers them for a few seconds.
    if (hit && now - hit.at < HOOK_CACHE_MS) return hit.d;
    let d: Decision;
    try {
      const r = await fetch(this.#c.authHook as string, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(this.#c.authHookTimeoutMs),
      });
      await r.body?.cancel();
      d = r.ok ? { ok: true } : deny(403, `the auth hook denied ${a.action} on '${a.path}' (${r.status})`);
    } catch (e) {
      this.#log.warn("media auth hook failed; denying", { error: (e as Error).message });
      d = deny(403, `the auth hook could not be reached: ${a.action} on '${a.path}' denied`);
    }
    if (this.#hookCache.size >= HOOK_CACHE_MAX) this.#hookCache.clear();
    this.#hookCache.set(body, { at: now, d });
    return d;
  }

  /**
   * Path and key of an RTMP publish. OBS sends the server URL's path as `app` and the "stream key" field as the
   * publish name, so all of these reach path live/cam1 with key K:
   *   rtmp://h/live/cam1?key=K (ffmpeg)  ·  server rtmp://h/live + key `cam1?key=K`  ·  rtmp://h/live/cam1/K
   *   server rtmp://h/live + key `K` (the key names its path, like Twitch/YouTube keys)
   */
  rtmpTarget(app: string, name: string): { path: string; key: string | undefined } {
    const q = name.indexOf("?");
    const base = q < 0 ? name : name.slice(0, q);
    const params = new URLSearchParams(q < 0 ? "" : name.slice(q + 1));
    const full = [app, base].filter(Boolean).join("/");
    const key = params.get("key") ?? undefined;
    if (key) return { path: full, key };
    const i = full.lastIndexOf("/");
    const last = full.slice(i + 1);
    // Keys carry an `sk_` prefix, so a revoked or mistyped key is still taken as a key (and refused), never as a path.
    if (!last.startsWith("sk_") || i < 0) return { path: full, key: undefined };
    const prefix = full.slice(0, i);
    const stored = this.keys.find(last);
    if (stored?.path.startsWith(`${prefix}/`)) return { path: stored.path, key: last };
    return { path: prefix, key: last };
  }
}

export interface SrtTarget {
  mode: "publish" | "read";
  path: string;
  key: string | undefined;
  /** A reader's `?exp=...&sig=...` (signed paths). */
  query: URLSearchParams;
}

/**
 * Mode, path and key of an SRT Stream ID: `publish:<path>[:<key>]`, `read:<path>[?exp=..&sig=..]`, the SRT
 * access-control form `#!::r=<path>,m=publish|request[,u=<user>][,s=<key or signed query>]`, or a bare path
 * (publish). Anything else is undefined.
 */
export function srtTarget(streamId: string | undefined): SrtTarget | undefined {
  if (!streamId) return undefined;
  const split = (p: string) => {
    const q = p.indexOf("?");
    return q < 0
      ? { path: p, query: new URLSearchParams() }
      : { path: p.slice(0, q), query: new URLSearchParams(p.slice(q + 1)) };
  };
  if (streamId.startsWith("#!::")) {
    const kv = new Map(
      streamId
        .slice(4)
        .split(",")
        .map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)] as const),
    );
    const r = kv.get("r");
    const m = kv.get("m") ?? "publish";
    if (!r || (m !== "publish" && m !== "request")) return undefined;
    const secret = kv.get("s") || undefined;
    if (m === "publish") return { mode: "publish", path: r, key: kv.get("u") || secret, query: new URLSearchParams() };
    const { path, query } = split(r);
    const q = secret?.includes("=") ? new URLSearchParams(secret) : query;
    return { mode: "read", path, key: undefined, query: q };
  }
  const parts = streamId.split(":");
  if (parts.length === 1) return { mode: "publish", path: streamId, key: undefined, query: new URLSearchParams() };
  if (parts[0] === "read" && parts[1] && parts.length === 2)
    return { mode: "read", key: undefined, ...split(parts[1]) };
  if (parts[0] !== "publish" || !parts[1] || parts.length > 3) return undefined;
  return { mode: "publish", path: parts[1], key: parts[2] || undefined, query: new URLSearchParams() };
}
