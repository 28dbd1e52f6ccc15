/**
 * The JavaScript that runs inside workerd, next to the user's module.
 *
 * A pooled workerd process starts with LOADER_MODULE only (no function yet). When the edge service claims it for a
 * function, it POSTs the function's code once (`/_ami/load`, with the process's control token); the loader then runs
 * it as a dynamic Worker (workerd's worker-loader binding) whose main module is ENTRY_MODULE importing `worker.js`,
 * whose env holds only the KV/ORIGIN bindings and the function's vars, and whose `globalOutbound` is the deny worker.
 * From then on the process serves that one function and nothing else (the watchdog's limits stay per function).
 */

/** Every outbound fetch() that is not a binding lands here. */
export const DENY_MODULE = `export default {
  fetch(request) {
    return new Response("ami-streams edge: outbound network denied (a function reaches only its bindings)", { status: 403 });
  },
};
`;

/**
 * The user's module's entry: hands it an env whose KV is a Workers-KV-like object (get, put, delete, list) over the
 * KV service binding, ORIGIN when configured and the function's vars and secrets. Nothing else of the raw env leaks.
 * Two internal calls carry the load's random token: the probe (answers once the module compiled, without running
 * it) and a cron trigger (runs the module's `scheduled` handler).
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
function envOf(env) {
  const e = { ...env.AMI_VARS, KV: kvOf(env.KV_SERVICE) };
  if (env.ORIGIN) e.ORIGIN = env.ORIGIN;
  return e;
}
export default {
  async fetch(request, env, ctx) {
    if (request.headers.get("x-ami-edge-probe") === env.AMI_PROBE) return new Response(null, { status: 204 });
    if (request.headers.get("x-ami-edge-scheduled") === env.AMI_PROBE) {
      if (!user || typeof user.scheduled !== "function") return new Response("the module has no scheduled() handler", { status: 501 });
      const cron = request.headers.get("x-ami-edge-cron") || "";
      const scheduledTime = Number(request.headers.get("x-ami-edge-time")) || Date.now();
      try {
        await user.scheduled({ cron, scheduledTime, noRetry() {} }, envOf(env), ctx);
      } catch (e) {
        console.error("scheduled() threw: " + (e && e.stack || e));
        return new Response(String(e && e.message || e), { status: 500 });
      }
      return new Response(null, { status: 204 });
    }
    if (!user || typeof user.fetch !== "function") {
      return new Response("ami-streams edge: the module has no default export with a fetch() handler", { status: 500 });
    }
    return user.fetch(request, envOf(env), ctx);
  },
};
`;

/**
 * The pooled process's only static worker. Control calls carry `x-ami-edge-ctl: <AMI_CTL>` (a per-process token;
 * the edge service strips every x-ami-edge-* header from outside requests): `/_ami/ping` (started), `/_ami/load`
 * (once: the function's code and vars), `/_ami/scheduled` (a cron trigger). Everything else goes to the function.
 */
export const LOADER_MODULE = `const ENTRY = ${JSON.stringify(ENTRY_MODULE)};
let spec = null;
function fn(env) {
  return env.LOADER.get("fn", () => {
    const e = { KV_SERVICE: env.KV, AMI_VARS: spec.vars, AMI_PROBE: spec.probe };
    if (env.ORIGIN) e.ORIGIN = env.ORIGIN;
    return {
      compatibilityDate: env.AMI_DATE,
      mainModule: "ami-entry.js",
      modules: { "ami-entry.js": ENTRY, "worker.js": spec.code },
      env: e,
      globalOutbound: env.DENY,
    };
  }).getEntrypoint();
}
export default {
  async fetch(request, env) {
    if (request.headers.get("x-ami-edge-ctl") === env.AMI_CTL) {
      const path = new URL(request.url).pathname;
      if (path === "/_ami/ping") return new Response(null, { status: 204 });
      if (path === "/_ami/load") {
        if (spec) return new Response("this process already serves a function", { status: 409 });
        spec = await request.json();
        try {
          const r = await fn(env).fetch("http://fn/", { headers: { "x-ami-edge-probe": spec.probe } });
          await r.arrayBuffer();
          if (r.status !== 204) throw new Error("the module did not answer the probe (" + r.status + ")");
        } catch (e) {
          return new Response(String((e && e.stack) || e), { status: 422 });
        }
        return new Response(null, { status: 204 });
      }
      if (path === "/_ami/scheduled" && spec) {
        return fn(env).fetch("http://fn/", { headers: {
          "x-ami-edge-scheduled": spec.probe,
          "x-ami-edge-cron": request.headers.get("x-ami-edge-cron") || "",
          "x-ami-edge-time": request.headers.get("x-ami-edge-time") || "",
        } });
      }
      return new Response("unknown control call", { status: 404 });
    }
    if (!spec) return new Response("no function loaded", { status: 503 });
    return fn(env).fetch(request);
  },
};
`;
