/** The `matrix` service as the supervisor sees it. */

import type { Config } from "../config.ts";
import { AmiError } from "../core/errors.ts";
import { baseUrl } from "../core/http/address.ts";
import type { ServiceDef } from "../core/service.ts";
import { turnSecret, turnUris } from "../turn/coturn.ts";

/** With our coturn on and no TURN of its own configured, the homeserver hands out coturn's credentials. */
function withTurn(config: Config): Config["matrix"] {
  const m = config.matrix;
  if (!config.turn.enabled || m.voip.turnUris.length > 0) return m;
  return { ...m, voip: { ...m.voip, turnUris: turnUris(config), turnSharedSecret: turnSecret(config) } };
}

export const matrixService: ServiceDef = {
  name: "matrix",
  summary: "Matrix homeserver (client-server API, media, admin)",
  enabled: (c) => c.matrix.enabled,
  baseUrl: (c) => baseUrl("http", c.matrix.host, c.matrix.port),
  describe: (c) => [
    `matrix: homeserver ${c.matrix.serverName}${c.matrix.workers > 1 ? ` (${c.matrix.workers} workers)` : ""} at ${c.matrix.publicBaseUrl ?? baseUrl("http", c.matrix.host, c.matrix.port)} (store: ${c.matrix.database.split(":")[0]})`,
    `  create a user:  ami-streams matrix user create alice --password '...' [--admin]`,
    "  then log in with any Matrix client (Element, matrix-js-sdk) at that URL",
  ],
  withWorkers(config, workers) {
    const matrix = { ...config.matrix, workers };
    if (workers > 1 && !/^postgres(ql)?:\/\//.test(matrix.database))
      throw new AmiError(
        "AMI_INVALID_CONFIG",
        "'matrix.workers' > 1 needs a postgres:// 'matrix.database' (SQLite is one process's file)",
      );
    return { ...config, matrix };
  },
  async start(config, { paths, log }) {
    // Loaded here, not at the top: the CLI lists services on every call and should not pay for the homeserver.
    const { startHomeserver } = await import("./homeserver.ts");
    const { openStore } = await import("../cas/open.ts");
    const matrix = withTurn(config);
    // Worker 0 starts first and alone: it migrates the database and creates the signing key the others then read.
    const hs = await startHomeserver(matrix, paths.serviceData("matrix"), log, openStore({ config, paths }));
    if (matrix.workers <= 1) return { url: hs.url, close: () => hs.close() };
    const { forkWorkers } = await import("./cluster/workers.ts");
    let workers: Awaited<ReturnType<typeof forkWorkers>>;
    try {
      workers = await forkWorkers(config, matrix, log);
    } catch (e) {
      await hs.close();
      throw e;
    }
    return {
      url: hs.url,
      async close() {
        await workers.close();
        await hs.close();
      },
    };
  },
};
