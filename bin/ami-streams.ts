#!/usr/bin/env node
/** Entry point: `node bin/ami-streams.ts <command> ...` (the `bin/ami-streams` wrapper picks Node 24
 * and starts it through bin/ami-streams.mjs, which turns on the compile cache first). */
// Everything we create (runtime dir, databases, logs, recordings, keys, tokens) is private to the user; the
// supervisor, services and their ffmpeg children inherit this umask.
process.umask(0o077);
const argv = process.argv.slice(2);
if (argv[0] === "serve" && !argv.includes("--help") && !argv.includes("-h")) {
  // Service processes skip the CLI/MCP machinery: less to load, less resident memory.
  const { serveMain } = await import("../src/control/serve.ts");
  process.exit(await serveMain(argv.slice(1)));
}
const { main } = await import("../src/cli/main.ts");
process.exit(await main(argv));
