/**
 * Every method + path the Matrix client-server API defines (the v1.19 OpenAPI files in spec/matrix), and a probe
 * that asks a homeserver each of them with placeholder parameters: a route the server lacks answers 404/405 with
 * `M_UNRECOGNIZED`; anything else means the route exists (a 400, 403 or 404 `M_NOT_FOUND` for the placeholder is
 * the route answering). Used by scripts/spec-coverage.ts and the route-coverage test.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { SPEC_DIR } from "./spec-schema.ts";

export interface SpecRoute {
  file: string;
  method: string;
  /** Full path template, e.g. /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}. */
  path: string;
  /** The path as the OpenAPI file writes it (below its basePath): what `specErrors` takes. */
  specPath: string;
  /** The spec version the operation was added in (`x-addedInMatrixVersion`), when the file says. */
  addedIn: string | undefined;
  deprecated: boolean;
  /** Needs an access token (security lists accessTokenQuery/accessTokenBearer and nothing optional). */
  auth: boolean;
}

const METHODS = ["get", "put", "post", "delete", "patch"];

export function clientServerRoutes(): SpecRoute[] {
  const dir = join(SPEC_DIR, "api", "client-server");
  const out: SpecRoute[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith(".yaml"))) {
    const doc = YAML.parse(readFileSync(join(dir, f), "utf8"));
    const base: string = doc?.servers?.[0]?.variables?.basePath?.default ?? "";
    for (const [p, item] of Object.entries<Record<string, any>>(doc?.paths ?? {})) {
      for (const m of METHODS) {
        const op = item[m];
        if (!op) continue;
        const sec: Record<string, unknown>[] | undefined = op.security;
        out.push({
          file: f,
          method: m.toUpperCase(),
          path: `${base}${p}`,
          specPath: p,
          addedIn: op["x-addedInMatrixVersion"],
          deprecated: op.deprecated === true,
          auth: !!sec && sec.length > 0 && !sec.some((s) => Object.keys(s).length === 0),
        });
      }
    }
  }
  return out.sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
}

const PLACEHOLDERS: Record<string, string> = {
  roomId: "!nonexistent:localhost",
  roomIdOrAlias: "!nonexistent:localhost",
  roomAlias: "#nonexistent:localhost",
  eventId: "$nonexistent",
  eventType: "m.room.message",
  stateKey: "",
  txnId: "txn1",
  serverName: "localhost",
  mediaId: "nonexistent",
  keyId: "ed25519:nonexistent",
  version: "1",
  sessionId: "nonexistent",
  tag: "u.test",
  type: "m.test",
  kind: "override",
  ruleId: "nonexistent",
  scope: "global",
  protocol: "irc",
  loginType: "m.login.password",
  relType: "m.annotation",
  filterId: "0",
  deviceId: "NONEXISTENT",
  receiptType: "m.read",
  membership: "join",
};

export interface Probe {
  route: SpecRoute;
  status: number;
  errcode: string | undefined;
  /** The server has no such route. */
  missing: boolean;
}

/** Ask `base` every route once; `userId` fills {userId}, `token` authenticates. */
export async function probeRoutes(base: string, token: string, userId: string, routes = clientServerRoutes()) {
  const probes: Probe[] = [];
  for (const route of routes) {
    const path = route.path.replace(/\{(\w+)\}/g, (_m, name: string) =>
      encodeURIComponent(name === "userId" ? userId : (PLACEHOLDERS[name] ?? "x")),
    );
    const hasBody = route.method === "POST" || route.method === "PUT";
    const r = await fetch(`${base}${path}`, {
      method: route.method,
      headers: { authorization: `Bearer ${token}`, ...(hasBody ? { "content-type": "application/json" } : {}) },
      body: hasBody ? "{}" : undefined,
      redirect: "manual",
    });
    const text = await r.text();
    let errcode: string | undefined;
    let error: unknown;
    try {
      ({ errcode, error } = JSON.parse(text) ?? {});
    } catch {}
    // The router's own answer to an unknown path or method ("Unrecognized request..."); a route that answers
    // M_UNRECOGNIZED on purpose (GET /auth_metadata without OAuth, as the spec says) gives its own message.
    const routerAnswer =
      errcode === undefined || (typeof error === "string" && error.startsWith("Unrecognized request"));
    const missing =
      (r.status === 404 || r.status === 405) && (errcode === "M_UNRECOGNIZED" || errcode === undefined) && routerAnswer;
    probes.push({ route, status: r.status, errcode, missing });
  }
  return probes;
}
