import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { connect } from "node:tls";
import { createLogger } from "../logger.ts";
import { maxHeaderSize } from "../node-http.ts";
import { sendJson } from "./reply.ts";
import { createHttpListener } from "./server.ts";

const dir = mkdtempSync(join(tmpdir(), "ami-h2-kit-"));
execFileSync("openssl", [
  ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"],
  ...["-subj", "/CN=localhost", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem")],
]);
const l = createHttpListener({
  name: "h2 test",
  log: createLogger({ write: () => {} }),
  tls: { cert: readFileSync(join(dir, "c.pem")), key: readFileSync(join(dir, "k.pem")) },
  http2: true,
  limits: { headersTimeoutMs: 500, maxConcurrentStreams: 7 },
  handler(req, res, target) {
    if (target.pathname === "/throw") throw new Error("boom");
    sendJson(res, 200, { v: req.httpVersion, host: req.headers.host, path: target.pathname });
  },
});
const port = await l.listen(0, "127.0.0.1");
after(async () => {
  await l.close();
  rmSync(dir, { recursive: true, force: true });
});

test("h2 by ALPN: Host from :authority, the kit's stream limit and header size announced, errors answered", async () => {
  const s = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
  try {
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const r = s.request({ ":path": path });
        let status = 0;
        let body = "";
        r.on("response", (h) => {
          status = Number(h[":status"]);
        });
        r.setEncoding("utf8").on("data", (d: string) => {
          body += d;
        });
        r.on("end", () => resolve({ status, body }));
        r.on("error", reject);
        r.end();
      });
    const a = await get("/x");
    assert.equal(a.status, 200);
    assert.deepEqual(JSON.parse(a.body), { v: "2.0", host: `127.0.0.1:${port}`, path: "/x" });
    assert.equal((await get("/throw")).status, 500);
    assert.equal(s.remoteSettings.maxConcurrentStreams, 7);
    assert.equal(s.remoteSettings.maxHeaderListSize, maxHeaderSize);
    assert.equal(s.remoteSettings.enablePush, false);
  } finally {
    s.close();
  }
});

test("HTTP/1.1 fallback on the same port keeps the header timeout (slowloris gets 408)", async () => {
  const out = await new Promise<string>((resolve) => {
    const s = connect({ port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
    let text = "";
    s.on("secureConnect", () => {
      assert.equal(s.alpnProtocol, "http/1.1");
      s.write("GET /slow HTTP/1.1\r\nHost: a\r\n");
    });
    s.setEncoding("latin1").on("data", (d: string) => {
      text += d;
    });
    s.on("error", () => {});
    s.on("close", () => resolve(text));
    setTimeout(() => s.destroy(), 5_000).unref();
  });
  assert.match(out, /^HTTP\/1.1 408/);
  // A whole request on the fallback is served.
  const ok = await new Promise<string>((resolve) => {
    const s = connect({ port, host: "127.0.0.1", rejectUnauthorized: false });
    let text = "";
    s.on("secureConnect", () => s.write("GET /y HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"));
    s.setEncoding("latin1").on("data", (d: string) => {
      text += d;
    });
    s.on("close", () => resolve(text));
  });
  assert.match(ok, /^HTTP\/1.1 200/);
  assert.match(ok, /"v":"1.1","host":"b","path":"\/y"/);
});
