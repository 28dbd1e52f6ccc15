/**
 * Homeservers that federate with each other on loopback: each in-process on its own port and SQLite store, all
 * mapped in every one's `federation.hostMap` (hs1.test, hs2.test, ...), plus `dead.test` on a port nobody serves.
 */
import { freePort } from "../../../src/test/cli.ts";
import { startInProcess } from "./homeserver.ts";

export type Hs = Awaited<ReturnType<typeof startInProcess>>;

export interface Federated {
  servers: Hs[];
  hostMap: Record<string, string>;
  /** Stop every server (one already stopped by the test is fine). */
  dispose(): Promise<void>;
}

/**
 * `n` federating homeservers `hs1.test`..`hsN.test`; `over[i]` adds to server i's matrix config (its `federation`
 * merged into the common one).
 */
export async function startFederated(
  n: number,
  over: Record<string, any>[] = [],
  extraHosts: Record<string, string> = {},
): Promise<Federated> {
  const ports: number[] = [];
  for (let i = 0; i < n + 1; i++) ports.push(await freePort());
  const hostMap: Record<string, string> = { "dead.test": `http://127.0.0.1:${ports[n]}`, ...extraHosts };
  for (let i = 0; i < n; i++) hostMap[`hs${i + 1}.test`] = `http://127.0.0.1:${ports[i]}`;
  const servers: Hs[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const { federation, ...rest } = over[i] ?? {};
      servers.push(
        await startInProcess({
          serverName: `hs${i + 1}.test`,
          port: ports[i],
          ...rest,
          federation: { enabled: true, hostMap, requestTimeoutMs: 5000, ...federation },
        }),
      );
    }
  } catch (e) {
    for (const s of servers) await s.dispose().catch(() => {});
    throw e;
  }
  return {
    servers,
    hostMap,
    async dispose() {
      for (const s of servers) await s.dispose().catch(() => {});
    },
  };
}
