/**
 * The edge node in its own process for the benches: argv <origin URL> [<cert.pem> <key.pem>]; prints its URL on
 * stdout once listening, and with a certificate its HTTPS (h2 + HTTP/1.1) URL on a second line.
 */
import { cdnSchema } from "../../src/cdn/config.ts";
import { EdgeNode } from "../../src/cdn/node.ts";
import { createLogger } from "../../src/core/logger.ts";

const n = new EdgeNode({
  config: cdnSchema.parse({
    port: 0,
    region: "bench",
    tls: process.argv[4] ? { port: 0, certFile: process.argv[3], keyFile: process.argv[4] } : null,
  }),
  origin: process.argv[2] as string,
  log: createLogger({ level: "error" }),
});
const url = await n.start();
process.stdout.write(n.tlsUrl ? `${url}\n${n.tlsUrl}\n` : `${url}\n`);
process.on("SIGTERM", () => n.close().then(() => process.exit(0)));
