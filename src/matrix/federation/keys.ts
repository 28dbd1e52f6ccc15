/** Server keys (spec server-server "Retrieving server keys"): our keys, and the notary queries. */
import { AmiError } from "../../core/errors.ts";
import { isJsonObject } from "../events/types.ts";
import type { Route } from "../http/types.ts";
import { splitServerName } from "./discovery.ts";
import { ourKeysResponse } from "./server-keys.ts";

/** Servers one bulk query may name: each may cost a fetch. */
const MAX_SERVERS_PER_QUERY = 100;

function checkServerName(name: string): void {
  if (!splitServerName(name)) throw new AmiError("M_INVALID_PARAM", `'${name}' is not a server name`);
}

function minimumTs(v: unknown, what: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === "string" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || (typeof v === "string" && !/^\d+$/.test(v)))
    throw new AmiError("M_INVALID_PARAM", `${what} must be an integer timestamp`);
  return n;
}

export const keyRoutes: Route[] = [
  /** GET /_matrix/key/v2/server — our verify_keys, old_verify_keys and valid_until_ts, signed by our key. */
  {
    method: "GET",
    paths: ["/_matrix/key/v2/server", "/_matrix/key/v2/server/{keyId}"],
    auth: "none",
    async handler(req) {
      return { json: ourKeysResponse(req.hs.serverName, req.hs.signingKey, req.hs.config.federation) };
    },
  },
  /** GET /_matrix/key/v2/query/{serverName} — notary: that server's keys as we hold or fetch them, signed by us too. */
  {
    method: "GET",
    paths: ["/_matrix/key/v2/query/{serverName}"],
    auth: "none",
    async handler(req) {
      const server = req.params.serverName;
      checkServerName(server);
      const min = minimumTs(req.query.get("minimum_valid_until_ts") ?? undefined, "minimum_valid_until_ts");
      if (!req.hs.federation.access.allowed(server)) return { json: { server_keys: [] } };
      // No key ids named: any current key, valid until at least `min`.
      return { json: { server_keys: await req.hs.federation.keys.notaryResponses(server, {}, min) } };
    },
  },
  /** POST /_matrix/key/v2/query — notary, batched: `server_keys: {server: {keyId: {minimum_valid_until_ts}}}`. */
  {
    method: "POST",
    paths: ["/_matrix/key/v2/query"],
    auth: "none",
    async handler(req) {
      const q = req.body.server_keys;
      if (!isJsonObject(q)) throw new AmiError("M_BAD_JSON", "server_keys must be an object");
      const servers = Object.entries(q);
      if (servers.length > MAX_SERVERS_PER_QUERY)
        throw new AmiError("M_LIMIT_EXCEEDED", `At most ${MAX_SERVERS_PER_QUERY} servers per query`, {}, 400);
      const jobs: Promise<object[]>[] = [];
      for (const [server, ids] of servers) {
        checkServerName(server);
        if (!isJsonObject(ids)) throw new AmiError("M_BAD_JSON", `server_keys.${server} must be an object`);
        const criteria: Record<string, number | undefined> = {};
        for (const [id, c] of Object.entries(ids)) {
          if (!isJsonObject(c)) throw new AmiError("M_BAD_JSON", `server_keys.${server}.${id} must be an object`);
          criteria[id] = minimumTs(c.minimum_valid_until_ts, `server_keys.${server}.${id}.minimum_valid_until_ts`);
        }
        if (!req.hs.federation.access.allowed(server)) continue;
        jobs.push(req.hs.federation.keys.notaryResponses(server, criteria));
      }
      // A server that cannot be reached and has nothing cached is left out (spec).
      return { json: { server_keys: (await Promise.all(jobs)).flat() } };
    },
  },
];
