/**
 * Load generator with latencies, in its own process: CONNS keep-alive connections over 2 worker threads, one GET in
 * flight each (body framed by Content-Length), for SECONDS. Prints { ok, errors, bytes, p50, p99 } (ms) as JSON.
 * argv: <host> <port> <path> <connections> <seconds>
 */
import { connect } from "node:net";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

const THREADS = 2;
const argv: string[] = isMainThread ? process.argv.slice(2) : (workerData as string[]);
const [host = "127.0.0.1", port = "0", path = "/", conns = "50", seconds = "5"] = argv;
const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: ami-bench\r\n\r\n`);
const END = Buffer.from("\r\n\r\n");

interface Out {
  ok: number;
  errors: number;
  bytes: number;
  lat: number[];
}

async function work(n: number, ms: number): Promise<Out> {
  const out: Out = { ok: 0, errors: 0, bytes: 0, lat: [] };
  const end = Date.now() + ms;
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve) => {
          const s = connect({ host, port: Number(port) });
          s.setNoDelay(true);
          let buf: Buffer = Buffer.alloc(0);
          let need = -1;
          let t0 = 0;
          const next = () => {
            if (Date.now() >= end) {
              s.end();
              return resolve();
            }
            t0 = performance.now();
            s.write(request);
          };
          s.on("connect", next);
          s.on("error", () => {
            out.errors++;
            resolve();
          });
          s.on("data", (c: Buffer) => {
            out.bytes += c.length;
            buf = buf.length ? Buffer.concat([buf, c]) : c;
            for (;;) {
              if (need < 0) {
                const at = buf.indexOf(END);
                if (at < 0) return;
                const head = buf.toString("latin1", 0, at);
                const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
                if (!m || head.slice(9, 12) !== "200") {
                  out.errors++;
                  s.destroy();
                  return resolve();
                }
                need = Number(m[1]);
                buf = buf.subarray(at + 4);
              }
              if (buf.length < need) return;
              buf = buf.subarray(need);
              need = -1;
              out.ok++;
              out.lat.push(performance.now() - t0);
              next();
            }
          });
        }),
    ),
  );
  return out;
}

if (isMainThread) {
  const per = Math.ceil(Number(conns) / THREADS);
  const parts = await Promise.all(
    Array.from(
      { length: THREADS },
      () =>
        new Promise<Out>((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), { workerData: argv });
          w.once("message", resolve);
          w.once("error", reject);
        }),
    ),
  );
  void per;
  const lat = parts.flatMap((p) => p.lat).sort((a, b) => a - b);
  const pct = (q: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * q))] ?? 0;
  process.stdout.write(
    JSON.stringify({
      ok: parts.reduce((a, p) => a + p.ok, 0),
      errors: parts.reduce((a, p) => a + p.errors, 0),
      bytes: parts.reduce((a, p) => a + p.bytes, 0),
      p50: pct(0.5),
      p99: pct(0.99),
    }),
  );
} else {
  parentPort?.postMessage(await work(Math.ceil(Number(conns) / THREADS), Number(seconds) * 1000));
}
