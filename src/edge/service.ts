/**
 * The `edge` service: one HTTP listener (the shared kit) for
 * - `ANY /fn/<name>/<path>`: run a function (and any path a function's route matches);
 * - `/_ami/edge/kv/...`: the KV binding's backend, for workerd only (function name + per-function token injected);
 * - `/_ami/edge/api/...`: deploy / rollback / delete / list, with the control token (the `edge.*` ops);
 * - `/health`, `/metrics` (Prometheus), `/_ami/stats` (flat numbers for the monitor).
 */
import { baseUrl, urlHost } from "../core/http/address.ts";
import type { ServiceDef } from "../core/service.ts";

export const edgeService: ServiceDef = {
  name: "edge",
  summary: "Edge functions: Workers-compatible modules run by workerd (one process each), CPU/memory limits enforced",
  enabled: (c) => c.edge.enabled,
  baseUrl: (c) => baseUrl("http", c.edge.host, c.edge.port),
  describe: (c) => [
    `edge: functions at http://${urlHost(c.edge.host)}:${c.edge.port}/fn/<name>/ (deploy: ami-streams edge deploy --function NAME --file worker.js)`,
  ],
  async start(config, { log, paths }) {
    const { startEdge } = await import("./server.ts");
    const { readControlToken } = await import("../control/client.ts");
    const { openStore } = await import("../cas/open.ts");
    const s = await startEdge({
      config: config.edge,
      paths,
      log,
      cas: openStore({ config, paths }),
      token: readControlToken(config, paths) ?? null,
    });
    return { url: s.url, close: () => s.close() };
  },
};
