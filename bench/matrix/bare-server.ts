/**
 * The same-run baseline server: bare node:http in its own process, answering every request with a fixed JSON
 * body of BENCH_BODY_BYTES bytes (default: `{}`). Prints `LISTENING <url>` on stdout.
 */
import { createServer } from "node:http";

const size = Number(process.env.BENCH_BODY_BYTES ?? 0);
const body = size > 2 ? `{"x":"${"a".repeat(Math.max(0, size - 8))}"}` : "{}";
const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(0, "127.0.0.1", () => {
  const a = server.address();
  if (a && typeof a === "object") process.stdout.write(`LISTENING http://127.0.0.1:${a.port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
