/**
 * The one HTTP client for calls to other homeservers: resolves the destination (discovery.ts), signs the request
 * (X-Matrix) unless told not to, bounds the whole exchange by `requestTimeoutMs` and the body by
 * `maxResponseBytes`, and turns a remote error into an AmiError carrying the remote errcode. Refuses everything
 * in isolated mode (`federation.enabled: false`) and for servers the allow/deny lists exclude.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { AmiError, type ErrorCode } from "../../core/errors.ts";
import type { MatrixConfig } from "../config.ts";
import type { SigningKey } from "../events/signing.ts";
import { AddressPolicy } from "../service/safe-fetch.ts";
import type { ServerAccess } from "./access.ts";
import type { Destination, Discovery } from "./discovery.ts";
import { signRequest } from "./x-matrix.ts";

export interface FederationRequest {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Path with its query, percent-encoded as it goes on the wire (and is signed). */
  path: string;
  body?: unknown;
  /** Default true; key requests (`/_matrix/key/v2/*`) need no authentication. */
  sign?: boolean;
  signal?: AbortSignal;
}

export class FederationClient {
  readonly #cfg: MatrixConfig["federation"];
  readonly #serverName: string;
  readonly #key: SigningKey;
  readonly #discovery: Discovery;
  readonly #access: ServerAccess;
  readonly #policy: AddressPolicy;

  constructor(
    serverName: string,
    key: SigningKey,
    cfg: MatrixConfig["federation"],
    discovery: Discovery,
    access: ServerAccess,
  ) {
    this.#cfg = cfg;
    this.#serverName = serverName;
    this.#key = key;
    this.#discovery = discovery;
    this.#access = access;
    this.#policy = new AddressPolicy(cfg.ipRangeAllowlist, []);
  }

  /** The parsed JSON answer of `destination`; throws AmiError (the remote errcode for a Matrix error). */
  async request<T = unknown>(destination: string, r: FederationRequest): Promise<T> {
    const { status, body } = await this.requestBytes(destination, r, this.#cfg.maxResponseBytes);
    const text = body.toString("utf8");
    let json: unknown;
    try {
      json = text === "" ? {} : JSON.parse(text);
    } catch {
      throw new AmiError("AMI_UNAVAILABLE", `${destination} answered ${status} with a body that is not JSON`, {}, 502);
    }
    if (status >= 200 && status < 300) return json as T;
    throw remoteError(destination, status, json);
  }

  /**
   * The raw answer (status, headers, at most `maxBytes` of body, else M_TOO_LARGE) of `destination`, for answers
   * that are not JSON (federated media). Error statuses are the caller's to read (remoteError turns them into one).
   */
  async requestBytes(
    destination: string,
    r: FederationRequest,
    maxBytes: number,
  ): Promise<{ status: number; headers: IncomingMessage["headers"]; body: Buffer }> {
    const p = await this.#prepare(destination, r);
    return this.#send(p.dest, p.address, r, p.headers, p.body, maxBytes);
  }

  /**
   * The answer as a stream, for bodies too big to hold (federated media): resolves once the status and headers
   * are in (within `requestTimeoutMs`); then the body must keep coming (no `requestTimeoutMs` without a byte) and
   * the caller bounds its size and destroys the stream when done with it.
   */
  async requestStream(destination: string, r: FederationRequest): Promise<IncomingMessage> {
    const { dest, address, headers, body } = await this.#prepare(destination, r);
    const timeoutMs = this.#cfg.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const req = (dest.tls ? httpsRequest : httpRequest)(this.#options(dest, address, r, headers), (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      const timer = setTimeout(
        () => req.destroy(new AmiError("AMI_TIMEOUT", `${dest.serverName} did not answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      req.setTimeout(timeoutMs, () =>
        req.destroy(new AmiError("AMI_TIMEOUT", `${dest.serverName} stalled for ${timeoutMs} ms`)),
      );
      req.on("error", (e) => {
        clearTimeout(timer);
        reject(e instanceof AmiError ? e : unreachable(dest, e));
      });
      req.end(body);
    });
  }

  async #prepare(
    destination: string,
    r: FederationRequest,
  ): Promise<{
    dest: Destination;
    address: { address: string; family: number } | null;
    headers: Record<string, string>;
    body: Buffer | undefined;
  }> {
    if (!this.#cfg.enabled) throw new AmiError("M_FORBIDDEN", "Federation is disabled on this server");
    if (!this.#access.allowed(destination))
      throw new AmiError("M_FORBIDDEN", `Federation with ${destination} is not allowed by this server's configuration`);
    if (!r.path.startsWith("/")) throw new AmiError("AMI_INVALID_INPUT", "federation path must start with '/'");
    const dest = await this.#discovery.resolve(destination);
    const body = r.body === undefined ? undefined : Buffer.from(JSON.stringify(r.body), "utf8");
    const headers: Record<string, string> = { Host: dest.hostHeader, Accept: "application/json" };
    if (body) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = String(body.length);
    }
    if (r.sign !== false)
      headers.Authorization = signRequest(
        { method: r.method, uri: r.path, origin: this.#serverName, destination, content: r.body },
        this.#key,
      );
    const address = await this.#address(dest);
    return { dest, address, headers, body };
  }

  #options(
    dest: Destination,
    address: { address: string; family: number } | null,
    r: FederationRequest,
    headers: Record<string, string>,
  ) {
    return {
      host: dest.host,
      port: dest.port,
      method: r.method,
      path: r.path,
      headers,
      // The certificate must be valid for the name we asked for (spec: the delegated host name).
      servername: dest.tls ? dest.hostHeader.replace(/:\d+$/, "").replace(/^\[|\]$/g, "") : undefined,
      signal: r.signal,
      lookup: address ? pinned(address) : undefined,
    };
  }

  /**
   * The address to connect to: a hostMap entry as configured; a discovered one resolved here and only to a permitted
   * address (the socket is given that address, so a DNS answer changing between check and connect changes nothing).
   */
  async #address(dest: Destination): Promise<{ address: string; family: number } | null> {
    if (dest.via === "hostMap") return null;
    const found = isIP(dest.host)
      ? [{ address: dest.host, family: isIP(dest.host) }]
      : await dnsLookup(dest.host, { all: true }).catch((e: Error) => {
          throw new AmiError(
            "AMI_UNAVAILABLE",
            `${dest.serverName}: cannot resolve ${dest.host}: ${e.message}`,
            {},
            502,
          );
        });
    const ok = found.find((a) => this.#policy.permits(a.address));
    if (!ok)
      throw new AmiError(
        "M_FORBIDDEN",
        `${dest.serverName} resolves to ${dest.host} at a private or reserved address (matrix.federation.ipRangeAllowlist)`,
      );
    return ok;
  }

  #send(
    dest: Destination,
    address: { address: string; family: number } | null,
    r: FederationRequest,
    headers: Record<string, string>,
    body: Buffer | undefined,
    limit: number,
  ): Promise<{ status: number; headers: IncomingMessage["headers"]; body: Buffer }> {
    const timeoutMs = this.#cfg.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const opts = this.#options(dest, address, r, headers);
      const req = (dest.tls ? httpsRequest : httpRequest)(opts, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > limit) {
            req.destroy(new AmiError("M_TOO_LARGE", `${dest.serverName} answered more than ${limit} bytes`, {}, 502));
            return;
          }
          chunks.push(c);
        });
        res.on("end", () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
        res.on("error", (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
      // One deadline for connect, request and the whole response.
      const timer = setTimeout(
        () => req.destroy(new AmiError("AMI_TIMEOUT", `${dest.serverName} did not answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      req.on("error", (e) => {
        clearTimeout(timer);
        reject(e instanceof AmiError ? e : unreachable(dest, e));
      });
      req.end(body);
    });
  }
}

/** A remote server's error answer as an AmiError carrying its errcode (M_UNKNOWN when it gave none). */
export function remoteError(destination: string, status: number, json: unknown): AmiError {
  const remote = json as { errcode?: unknown; error?: unknown } | null;
  const code = typeof remote?.errcode === "string" && /^M_[A-Z_]+$/.test(remote.errcode) ? remote.errcode : "M_UNKNOWN";
  const msg = typeof remote?.error === "string" ? remote.error.slice(0, 500) : `HTTP ${status}`;
  return new AmiError(code as ErrorCode, `${destination}: ${msg}`, { remote_status: status }, status);
}

const unreachable = (dest: Destination, e: Error) =>
  new AmiError("AMI_UNAVAILABLE", `${dest.serverName} (${dest.host}:${dest.port}) unreachable: ${e.message}`, {}, 502);

/** A lookup that answers the address already checked. */
function pinned(addr: { address: string; family: number }): LookupFunction {
  return (_host, options, cb) => {
    if ((options as { all?: boolean }).all) (cb as (e: null, a: unknown[]) => void)(null, [addr]);
    else cb(null, addr.address, addr.family);
  };
}
