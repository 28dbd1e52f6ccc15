/**
 * Entry of a homeserver worker process (cluster/workers.ts forks it): receives its config over the IPC channel,
 * starts a homeserver on the shared port, answers `{ ready: url }` (or `{ error }`), and exits when told to stop
 * (SIGTERM) or when its parent is gone (the IPC channel closes), so no worker outlives its service.
 */
import type { Config } from "../../config.ts";
import { homeFor } from "../../config.ts";
import { installProcessGuards } from "../../core/http/process-guards.ts";
import { createLogger, guardStderr } from "../../core/logger.ts";
import { runtimePaths } from "../../core/paths.ts";

interface Start {
  config: Config;
  matrix: Config["matrix"];
  worker: number;
}

process.once("message", async (m: Start) => {
  const log = createLogger({ level: m.config.log.level, base: { service: "matrix", worker: m.worker } });
  installProcessGuards(log);
  guardStderr();
  try {
    const { startHomeserver } = await import("../homeserver.ts");
    const { openStore } = await import("../../cas/open.ts");
    const paths = runtimePaths(homeFor(m.config));
    const hs = await startHomeserver(
      m.matrix,
      paths.serviceData("matrix"),
      log,
      openStore({ config: m.config, paths }),
    );
    let closing = false;
    const stop = async () => {
      if (closing) return;
      closing = true;
      await hs.close().catch(() => {});
      process.exit(0);
    };
    process.once("SIGTERM", () => void stop());
    process.once("SIGINT", () => void stop());
    process.once("disconnect", () => void stop());
    process.send?.({ ready: hs.url });
  } catch (e) {
    process.send?.({ error: (e as Error).message ?? String(e) }, () => process.exit(1));
  }
});
