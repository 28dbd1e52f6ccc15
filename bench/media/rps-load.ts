/**
 * A small HTTP/1.1 load generator for the playlist bench, run as its own process (so it never shares the
 * server's event loop): `CONNS` keep-alive TCP connections each send one GET, read the whole answer (framed by
 * Content-Length), and send the next, for `SECONDS`. Raw sockets and a precomputed request keep the client's own
 * cost per request low and the same for every server it loads. Prints `{ requests, ok, bytes, errors }` as JSON.
 *
 * The connections are spread over THREADS worker threads, so the generator can outrun one server process.
 *
 * argv: <host> <port> <path> <connections> <seconds>
 */
import { connect, type Socket } from "node:net";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

const THREADS = 2;
const argv: string[] = isMainThread ? process.argv.slice(2) : (workerData as string[]);
const [host = "127.0.0.1", port = "0", path = "/", conns = "50", seconds = "5"] = argv;
const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: ami-bench\r\n\r\n`);
const HEADER_END = Buffer.from("\r\n\r\n");
const end = Date.now() + Number(seconds) * 1000;
let requests = 0;
let ok = 0;
let bytes = 0;
let errors = 0;

/** Content-Length of a header block (latin1), case-insensitively; -1 when absent. */
function contentLength(head: string): number {
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  return m ? Number(m[1]) : -1;
}

function client(): Promise<void> {
  return new Promise((resolve) => {
    const s: Socket = connect({ host, port: Number(port) });
    s.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let need = -1; // bytes of body still expected, -1 while reading headers
    let status = 0;
    const next = () => {
      if (Date.now() >= end) {
        s.end();
        return resolve();
      }
      requests++;
      s.write(request);
    };
    s.on("connect", next);
    s.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (need < 0) {
          const at = buf.indexOf(HEADER_END);
          if (at < 0) return;
          const head = buf.toString("latin1", 0, at);
          status = Number(head.slice(9, 12));
          need = contentLength(head);
          if (need < 0) {
            errors++;
            s.destroy();
            return resolve();
          }
          buf = buf.subarray(at + 4);
        }
        if (buf.length < need) {
          need -= buf.length;
          buf = Buffer.alloc(0);
          return;
        }
        buf = buf.subarray(need);
        need = -1;
        if (status === 200) ok++;
        else errors++;
        next();
      }
    });
    s.on("error", () => {
      errors++;
      resolve();
    });
    s.on("close", () => resolve());
  });
}

if (isMainThread) {
  const per = Math.ceil(Number(conns) / THREADS);
  const results = await Promise.all(
    Array.from(
      { length: THREADS },
      () =>
        new Promise<{ requests: number; ok: number; bytes: number; errors: number }>((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), { workerData: [host, port, path, String(per), seconds] });
          w.once("message", resolve);
          w.once("error", reject);
        }),
    ),
  );
  const sum = (k: "requests" | "ok" | "bytes" | "errors") => results.reduce((a, r) => a + r[k], 0);
  const total = { requests: sum("requests"), ok: sum("ok"), bytes: sum("bytes"), errors: sum("errors") };
  process.stdout.write(`${JSON.stringify(total)}\n`);
} else {
  await Promise.all(Array.from({ length: Number(conns) }, client));
  parentPort!.postMessage({ requests, ok, bytes, errors });
}
