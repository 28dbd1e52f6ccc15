/** The edge node in its own process for the benches: argv <origin URL>; prints its URL on stdout once listening. */
import { cdnSchema } from "../../src/cdn/config.ts";
import { EdgeNode } from "../../src/cdn/node.ts";
import { createLogger } from "../../src/core/logger.ts";

const n = new EdgeNode({
  config: cdnSchema.parse({ port: 0, region: "bench" }),
  origin: process.argv[2] as string,
  log: createLogger({ level: "error" }),
});
process.stdout.write(`${await n.start()}\n`);
process.on("SIGTERM", () => n.close().then(() => process.exit(0)));
