/**
 * The same-run baseline of the WebSocket bench: a bare `ws` server in its own process (no auth, no store, no
 * sync) that broadcasts the body of every `POST /broadcast` to all its connections. Prints `LISTENING <url>`.
 */
import { createServer } from "node:http";
import { type WebSocket, WebSocketServer } from "ws";

const conns = new Set<WebSocket>();
const wss = new WebSocketServer({ noServer: true, clientTracking: false, perMessageDeflate: false });
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const msg = Buffer.concat(chunks).toString("utf8");
    for (const ws of conns) ws.send(msg);
    res.end("{}");
  });
});
server.on("upgrade", (req, socket, head) =>
  wss.handleUpgrade(req, socket, head, (ws) => {
    conns.add(ws);
    ws.on("close", () => conns.delete(ws));
  }),
);
server.listen(0, "127.0.0.1", () => {
  const a = server.address();
  if (a && typeof a === "object") process.stdout.write(`LISTENING http://127.0.0.1:${a.port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
