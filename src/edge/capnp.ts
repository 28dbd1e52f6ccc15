/**
 * The workerd config of one pooled process (Cap'n Proto text). It names no function: the loader worker
 * (modules.ts) receives one when the process is claimed. What a function can reach is exactly this: the KV and
 * ORIGIN service bindings and `globalOutbound` set to a deny worker, so any other fetch() answers 403 and never
 * leaves the process. No disk or network service is defined: no host files, no other hosts.
 */

export interface WorkerdPlan {
  /** Unix socket workerd listens on (the edge service proxies to it). */
  socket: string;
  /** Files (in the config's directory) holding modules.ts's loader and deny modules. */
  loaderFile: string;
  denyFile: string;
  /** The process's control token (load, ping, scheduled). */
  ctlToken: string;
  compatibilityDate: string;
  /** host:port of the edge service's KV endpoint, and the per-process token workerd injects on every KV call. */
  kv: { address: string; token: string };
  /** host:port of the origin (null: no ORIGIN binding). */
  origin: string | null;
}

/** A capnp text literal: JSON string escaping is valid there for the characters we allow. */
const str = (s: string): string => JSON.stringify(s);

export function workerdConfig(p: WorkerdPlan): string {
  const date = `compatibilityDate = ${str(p.compatibilityDate)}`;
  const bindings = [
    `(name = "LOADER", workerLoader = ())`,
    `(name = "KV", service = "kv")`,
    `(name = "DENY", service = "deny")`,
    `(name = "AMI_CTL", text = ${str(p.ctlToken)})`,
    `(name = "AMI_DATE", text = ${str(p.compatibilityDate)})`,
  ];
  if (p.origin) bindings.push(`(name = "ORIGIN", service = "origin")`);
  const services = [
    `(name = "main", worker = (modules = [(name = "loader.js", esModule = embed ${str(p.loaderFile)})], ${date}, ` +
      `globalOutbound = "deny", bindings = [${bindings.join(", ")}]))`,
    `(name = "deny", worker = (modules = [(name = "deny.js", esModule = embed ${str(p.denyFile)})], ${date}, ` +
      `globalOutbound = "deny"))`,
    `(name = "kv", external = (address = ${str(p.kv.address)}, http = (injectRequestHeaders = [` +
      `(name = "x-ami-edge-token", value = ${str(p.kv.token)})])))`,
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

export interface DirectPlan {
  socket: string;
  /** Files (in the config's directory): our entry module, the user's module, the deny worker. */
  entryFile: string;
  moduleFile: string;
  denyFile: string;
  /** The entry module's probe and trigger token. */
  probeToken: string;
  /** The function's vars and secrets (a JSON binding: the config file is 0600 in the service's data directory). */
  vars: Record<string, string>;
  compatibilityDate: string;
  kv: { address: string; token: string };
  origin: string | null;
}

/**
 * The config of a process dedicated to one function (a promotion, see process.ts): the entry module and the user's
 * module embedded, the same bindings and the same deny-all outbound as a loaded function, and no loader hop.
 */
export function directConfig(p: DirectPlan): string {
  const date = `compatibilityDate = ${str(p.compatibilityDate)}`;
  const bindings = [
    `(name = "KV_SERVICE", service = "kv")`,
    `(name = "AMI_PROBE", text = ${str(p.probeToken)})`,
    `(name = "AMI_VARS", json = ${str(JSON.stringify(p.vars))})`,
  ];
  if (p.origin) bindings.push(`(name = "ORIGIN", service = "origin")`);
  const services = [
    `(name = "main", worker = (modules = [(name = "ami-entry.js", esModule = embed ${str(p.entryFile)}), ` +
      `(name = "worker.js", esModule = embed ${str(p.moduleFile)})], ${date}, ` +
      `globalOutbound = "deny", bindings = [${bindings.join(", ")}]))`,
    `(name = "deny", worker = (modules = [(name = "deny.js", esModule = embed ${str(p.denyFile)})], ${date}, ` +
      `globalOutbound = "deny"))`,
    `(name = "kv", external = (address = ${str(p.kv.address)}, http = (injectRequestHeaders = [` +
      `(name = "x-ami-edge-token", value = ${str(p.kv.token)})])))`,
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
