/**
 * Child-process entry for e2e tests and benchmarks: starts one homeserver and prints `LISTENING <url>` on stdout,
 * so the parent can kill -9 it and measure its memory. Config: AMI_E2E_MATRIX (JSON, a partial `matrix` config);
 * data dir: AMI_E2E_DATA_DIR. Logs (JSON lines) go to stderr.
 */
import { configSchema } from "../../../src/config.ts";
import { createLogger } from "../../../src/core/logger.ts";
import { startHomeserver } from "../../../src/matrix/homeserver.ts";

const matrix = JSON.parse(process.env.AMI_E2E_MATRIX ?? "{}");
const dataDir = process.env.AMI_E2E_DATA_DIR;
if (!dataDir) throw new Error("AMI_E2E_DATA_DIR is not set");
const config = configSchema.parse({ matrix });
const log = createLogger({ level: (process.env.AMI_LOG_LEVEL as "info") || "warn" });

const running = await startHomeserver(config.matrix, dataDir, log);
process.stdout.write(`LISTENING ${running.url}\n`);

let closing = false;
const shutdown = async () => {
  if (closing) return;
  closing = true;
  await running.close();
  process.exit(0);
};
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());
