/**
 * Server discovery (spec server-server "Resolving server names"): where to connect for a server name and what
 * Host header / TLS name to use. The static `matrix.federation.hostMap` answers first (tests, overrides); then
 * the spec's steps: IP literal, explicit port, `/.well-known/matrix/server` (cached), SRV `_matrix-fed._tcp`
 * then the deprecated `_matrix._tcp`, else port 8448. Served for others: `GET /.well-known/matrix/server`.
 */
import { resolveSrv } from "node:dns/promises";
import { isIP } from "node:net";
import { AmiError } from "../../core/errors.ts";
import type { MatrixConfig } from "../config.ts";
import type { Route } from "../http/types.ts";
import { AddressPolicy, safeFetch } from "../service/safe-fetch.ts";

export interface Destination {
  serverName: string;
  /** Host (name or IP, no brackets) and port to connect to. */
  host: string;
  port: number;
  /** false only for a hostMap entry written http://… (tests on loopback). */
  tls: boolean;
  /** The Host header (and the name the certificate must be valid for, without port). */
  hostHeader: string;
  /** Which step found it, for `matrix federation resolve`. */
  via: "hostMap" | "ip" | "port" | "well-known" | "srv" | "srv-legacy" | "default";
}

export interface DiscoveryDeps {
  /** SRV records of a name ([] when none). */
  srv(name: string): Promise<{ name: string; port: number; priority: number; weight: number }[]>;
  /** The `m.server` of https://<host>/.well-known/matrix/server, or null when there is none or it is invalid. */
  wellKnown(host: string): Promise<string | null>;
}

const DEFAULT_PORT = 8448;
const WELL_KNOWN_TTL_MS = 24 * 3600_000;
const WELL_KNOWN_FAIL_TTL_MS = 3600_000;
const MAX_CACHED = 10_000;

/** Splits `host[:port]` (host may be `[v6]`); null when it is no valid server name. */
export function splitServerName(name: string): { host: string; port: number | null } | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(name);
  if (!m) return null;
  const port = m[2] === undefined ? null : Number(m[2]);
  if (port !== null && (port < 1 || port > 65535)) return null;
  return { host: m[1], port };
}

const unbracket = (h: string) => (h.startsWith("[") ? h.slice(1, -1) : h);

export class Discovery {
  readonly #cfg: MatrixConfig["federation"];
  readonly #deps: DiscoveryDeps;
  readonly #wellKnownCache = new Map<string, { value: string | null; until: number }>();

  constructor(cfg: MatrixConfig["federation"], deps: DiscoveryDeps = realDiscoveryDeps(cfg)) {
    this.#cfg = cfg;
    this.#deps = deps;
  }

  async resolve(serverName: string): Promise<Destination> {
    const mapped = this.#cfg.hostMap[serverName];
    if (mapped) {
      const tls = !mapped.startsWith("http://");
      const hp = splitServerName(mapped.replace(/^https?:\/\//, ""));
      if (!hp || hp.port === null) throw new AmiError("AMI_INVALID_CONFIG", `hostMap entry of ${serverName} is bad`);
      return { serverName, host: unbracket(hp.host), port: hp.port, tls, hostHeader: serverName, via: "hostMap" };
    }
    const sn = splitServerName(serverName);
    if (!sn) throw new AmiError("M_INVALID_PARAM", `'${serverName}' is not a server name`);
    // 1. An IP literal: that address, the port given or 8448.
    if (isIP(unbracket(sn.host)))
      return this.#dest(serverName, sn.host, sn.port ?? DEFAULT_PORT, serverName, sn.port ? "ip" : "ip");
    // 2. An explicit port: that host and port.
    if (sn.port !== null) return this.#dest(serverName, sn.host, sn.port, serverName, "port");
    // 3. Well-known delegation, then the same steps on the delegated name.
    const delegated = await this.#wellKnown(sn.host);
    if (delegated) {
      const d = splitServerName(delegated);
      if (d) {
        if (isIP(unbracket(d.host)) || d.port !== null)
          return this.#dest(serverName, d.host, d.port ?? DEFAULT_PORT, delegated, "well-known");
        const srv = await this.#srv(d.host);
        if (srv) return this.#dest(serverName, srv.host, srv.port, d.host, srv.legacy ? "srv-legacy" : "srv");
        return this.#dest(serverName, d.host, DEFAULT_PORT, d.host, "well-known");
      }
    }
    // 4./5. SRV records of the server name itself, else 6. port 8448.
    const srv = await this.#srv(sn.host);
    if (srv) return this.#dest(serverName, srv.host, srv.port, sn.host, srv.legacy ? "srv-legacy" : "srv");
    return this.#dest(serverName, sn.host, DEFAULT_PORT, sn.host, "default");
  }

  #dest(serverName: string, host: string, port: number, hostHeader: string, via: Destination["via"]): Destination {
    return { serverName, host: unbracket(host), port, tls: true, hostHeader, via };
  }

  async #wellKnown(host: string): Promise<string | null> {
    const now = Date.now();
    const hit = this.#wellKnownCache.get(host);
    if (hit && hit.until > now) return hit.value;
    let value: string | null = null;
    try {
      value = await this.#deps.wellKnown(host);
    } catch {
      value = null;
    }
    if (this.#wellKnownCache.size >= MAX_CACHED) this.#wellKnownCache.clear();
    this.#wellKnownCache.set(host, { value, until: now + (value ? WELL_KNOWN_TTL_MS : WELL_KNOWN_FAIL_TTL_MS) });
    return value;
  }

  async #srv(host: string): Promise<{ host: string; port: number; legacy: boolean } | null> {
    for (const [prefix, legacy] of [
      ["_matrix-fed._tcp.", false],
      ["_matrix._tcp.", true],
    ] as const) {
      let records: Awaited<ReturnType<DiscoveryDeps["srv"]>> = [];
      try {
        records = await this.#deps.srv(prefix + host);
      } catch {
        records = [];
      }
      // Lowest priority first, then highest weight (a deterministic pick; weighting is for load, not correctness).
      const best = records
        .filter((r) => r.name !== "." && r.name !== "")
        .sort((a, b) => a.priority - b.priority || b.weight - a.weight)[0];
      if (best) return { host: best.name.replace(/\.$/, ""), port: best.port, legacy };
    }
    return null;
  }
}

/**
 * DNS through node:dns; well-known over HTTPS through the SSRF-safe fetch (certificate checked, redirects followed
 * and each target's addresses checked against the same private-range policy as the client, 64 KiB, a deadline).
 */
export function realDiscoveryDeps(cfg: MatrixConfig["federation"]): DiscoveryDeps {
  const policy = new AddressPolicy(cfg.ipRangeAllowlist, []);
  return {
    srv: (name) => resolveSrv(name),
    async wellKnown(host) {
      if (!cfg.enabled) return null;
      const res = await safeFetch(new URL(`https://${host}/.well-known/matrix/server`), {
        policy,
        maxBytes: 64 * 1024,
        signal: AbortSignal.timeout(Math.min(cfg.requestTimeoutMs, 10_000)),
        accept: "application/json",
      });
      if (res.status !== 200 || res.truncated) return null;
      const body = JSON.parse(res.body.toString("utf8")) as { "m.server"?: unknown };
      const m = body?.["m.server"];
      return typeof m === "string" && splitServerName(m) ? m : null;
    },
  };
}

export const wellKnownRoutes: Route[] = [
  /** GET /.well-known/matrix/server — `{"m.server": matrix.federation.wellKnownServer}`; 404 when not delegating. */
  {
    method: "GET",
    paths: ["/.well-known/matrix/server"],
    auth: "none",
    async handler(req) {
      const s = req.hs.config.federation.wellKnownServer;
      if (!s) throw new AmiError("M_NOT_FOUND", "This server does not delegate federation");
      return { json: { "m.server": s } };
    },
  },
];
