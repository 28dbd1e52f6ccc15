/**
 * The workerd config of one function's process (Cap'n Proto text). What a function can reach is exactly this:
 * its own module (behind our entry wrapper), the KV and ORIGIN service bindings, and `globalOutbound` set to a deny
 * worker, so any other fetch() answers 403 and never leaves the process. No disk service is defined: no host files.
 */

export interface WorkerdPlan {
  /** Unix socket workerd listens on (the edge service proxies to it). */
  socket: string;
  /** The user's module file (embedded by workerd at start). */
  moduleFile: string;
  /** Our entry module file (entry.ts's source). */
  entryFile: string;
  denyFile: string;
  /** The readiness probe's token (a text binding the entry module checks). */
  probeToken: string;
  compatibilityDate: string;
  /** host:port of the edge service's KV endpoint, and the header that names and authenticates the function. */
  kv: { address: string; fn: string; token: string };
  /** host:port of the origin (null: no ORIGIN binding). */
  origin: string | null;
}

/** A capnp text literal: JSON string escaping is valid there for the characters we allow. */
const str = (s: string): string => JSON.stringify(s);

export function workerdConfig(p: WorkerdPlan): string {
  const bindings = [`(name = "KV_SERVICE", service = "kv")`, `(name = "AMI_PROBE", text = ${str(p.probeToken)})`];
  if (p.origin) bindings.push(`(name = "ORIGIN", service = "origin")`);
  const services = [
    `(name = "main", worker = (modules = [(name = "ami-entry.js", esModule = embed ${str(p.entryFile)}), ` +
      `(name = "worker.js", esModule = embed ${str(p.moduleFile)})], compatibilityDate = ${str(p.compatibilityDate)}, ` +
      `globalOutbound = "deny", bindings = [${bindings.join(", ")}]))`,
    `(name = "deny", worker = (modules = [(name = "deny.js", esModule = embed ${str(p.denyFile)})], ` +
      `compatibilityDate = ${str(p.compatibilityDate)}, globalOutbound = "deny"))`,
    `(name = "kv", external = (address = ${str(p.kv.address)}, http = (injectRequestHeaders = [` +
      `(name = "x-ami-edge-fn", value = ${str(p.kv.fn)}), (name = "x-ami-edge-token", value = ${str(p.kv.token)})])))`,
  ];
  if (p.origin) services.push(`(name = "origin", external = (address = ${str(p.origin)}, http = ()))`);
  return [
    `using Workerd = import "/workerd/workerd.capnp";`,
    "const config :Workerd.Config = (",
    `  services = [\n    ${services.join(",\n    ")}\n  ],`,
    `  sockets = [(name = "http", address = ${str(`unix:${p.socket}`)}, http = (), service = "main")],`,
    ");",
    "",
  ].join("\n");
}

/** Every outbound fetch() that is not a binding lands here. */
export const DENY_MODULE = `export default {
  fetch(request) {
    return new Response("ami-streams edge: outbound network denied (a function reaches only its bindings)", { status: 403 });
  },
};
`;

/**
 * The main module: imports the user's module and hands it an env whose KV is a Workers-KV-like object (get, put,
 * delete, list) over the KV service binding, and ORIGIN when configured. Nothing else of the raw env leaks.
 */
export const ENTRY_MODULE = `import user from "./worker.js";
const enc = encodeURIComponent;
function kvOf(svc) {
  return {
    async get(key, type) {
      const opts = typeof type === "object" && type !== null ? type : { type };
      const r = await svc.fetch("http://kv/_ami/edge/kv/v/" + enc(key));
      if (r.status === 404) return null;
      if (!r.ok) throw new Error("KV get failed: " + r.status + " " + (await r.text()));
      const t = opts.type || "text";
      if (t === "json") return r.json();
      if (t === "arrayBuffer") return r.arrayBuffer();
      if (t === "stream") return r.body;
      return r.text();
    },
    async put(key, value) {
      const body = typeof value === "string" || value instanceof ArrayBuffer || ArrayBuffer.isView(value) || value instanceof ReadableStream ? value : String(value);
      const r = await svc.fetch("http://kv/_ami/edge/kv/v/" + enc(key), { method: "PUT", body });
      if (!r.ok) throw new Error("KV put failed: " + r.status + " " + (await r.text()));
    },
    async delete(key) {
      const r = await svc.fetch("http://kv/_ami/edge/kv/v/" + enc(key), { method: "DELETE" });
      if (!r.ok && r.status !== 404) throw new Error("KV delete failed: " + r.status);
    },
    async list(opts = {}) {
      const r = await svc.fetch("http://kv/_ami/edge/kv/list?prefix=" + enc(opts.prefix || ""));
      if (!r.ok) throw new Error("KV list failed: " + r.status);
      return r.json();
    },
  };
}
export default {
  async fetch(request, env, ctx) {
    if (request.headers.get("x-ami-edge-probe") === env.AMI_PROBE) return new Response(null, { status: 204 });
    if (!user || typeof user.fetch !== "function") {
      return new Response("ami-streams edge: the module has no default export with a fetch() handler", { status: 500 });
    }
    const e = { KV: kvOf(env.KV_SERVICE) };
    if (env.ORIGIN) e.ORIGIN = env.ORIGIN;
    return user.fetch(request, e, ctx);
  },
};
`;
