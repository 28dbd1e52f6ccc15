import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { probe } from "./health.ts";

const listening = async <T extends { listen: (...a: any[]) => unknown; address: () => unknown }>(srv: T) => {
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return (srv.address() as { port: number }).port;
};

test("tcp: a listener passes, a closed port fails", async () => {
  const srv = createServer((s) => s.end());
  const port = await listening(srv);
  assert.equal(await probe({ tcp: `127.0.0.1:${port}` }, tmpdir()), true);
  await new Promise<void>((r) => srv.close(() => r()));
  assert.equal(await probe({ tcp: `127.0.0.1:${port}` }, tmpdir()), false);
});

test("http: 2xx passes; 3xx, 5xx and no answer fail", async () => {
  const srv = createHttpServer((req, res) => {
    res.writeHead(req.url === "/ok" ? 204 : req.url === "/moved" ? 302 : 503, { location: "/ok" });
    res.end();
  });
  const port = await listening(srv);
  const url = (p: string) => ({ http: `http://127.0.0.1:${port}${p}` });
  assert.equal(await probe(url("/ok"), tmpdir()), true);
  assert.equal(await probe(url("/moved"), tmpdir()), false);
  assert.equal(await probe(url("/down"), tmpdir()), false);
  srv.close();
  srv.closeAllConnections();
  assert.equal(await probe(url("/ok"), tmpdir()), false);
});

test("command: exit 0 passes; non-zero and a missing program fail", async () => {
  assert.equal(await probe({ command: ["true"] }, tmpdir()), true);
  assert.equal(await probe({ command: ["sh", "-c", "exit 4"] }, tmpdir()), false);
  assert.equal(await probe({ command: ["/nonexistent/probe"] }, tmpdir()), false);
});
