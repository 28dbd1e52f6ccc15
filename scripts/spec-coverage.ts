/**
 * Which client-server routes of the Matrix spec (v1.19, spec/matrix) the homeserver answers: starts one in-process
 * on a temporary SQLite store, probes every method + path, prints the missing ones and a count.
 * `node scripts/spec-coverage.ts [--json]`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configSchema } from "../src/config.ts";
import { silentLogger } from "../src/core/logger.ts";
import { startHomeserver } from "../src/matrix/homeserver.ts";
import { probeRoutes } from "../src/test/spec-routes.ts";

const dir = mkdtempSync(join(tmpdir(), "ami-spec-coverage-"));
const config = configSchema.parse({
  matrix: {
    port: 0,
    database: `sqlite:${join(dir, "hs.db")}`,
    registration: { enabled: true },
    limits: { perUser: { perSecond: 1e6, burst: 1e6 }, perIp: { perSecond: 1e6, burst: 1e6 } },
    // Off by default (as Synapse), and then the route answers 404 M_UNRECOGNIZED: count what the server can serve.
    media: { urlPreview: { enabled: true } },
  },
});
const hs = await startHomeserver(config.matrix, dir, silentLogger);
try {
  const reg = async (auth?: unknown) =>
    fetch(`${hs.url}/_matrix/client/v3/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "probe", password: "probe password 1", auth }),
    }).then((r) => r.json());
  const first = await reg();
  const user = first.access_token ? first : await reg({ type: "m.login.dummy", session: first.session });
  const probes = await probeRoutes(hs.url, user.access_token, user.user_id);
  const missing = probes.filter((p) => p.missing);
  if (process.argv.includes("--json")) console.log(JSON.stringify(probes, null, 2));
  else {
    for (const p of missing)
      console.log(
        `${p.route.method.padEnd(6)} ${p.route.path}${p.route.deprecated ? "  (deprecated)" : ""}  [${p.route.file}]`,
      );
    console.log(
      `\n${probes.length - missing.length} of ${probes.length} client-server routes answered; ${missing.length} missing`,
    );
  }
} finally {
  await hs.close();
  rmSync(dir, { recursive: true, force: true });
}
