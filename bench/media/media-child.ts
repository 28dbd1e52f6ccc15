/**
 * The media service in its own process for the benchmarks (so its CPU and RSS are its own and the load generator
 * does not share its event loop). BENCH_MEDIA_CONFIG: JSON merged into `media`. Prints `LISTENING <json>`.
 */
import { configSchema } from "../../src/config.ts";
import { createLogger, silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";

const extra = JSON.parse(process.env.BENCH_MEDIA_CONFIG ?? "{}");
const media = { host: "127.0.0.1", rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 }, ...extra };
// BENCH_MEDIA_LOG=1: the service's log on stderr (when a test needs to see why a connection closed).
const log = process.env.BENCH_MEDIA_LOG ? createLogger({ level: "info" }) : silentLogger;
const m = await MediaServer.start(configSchema.parse({ media }).media, log);
const urls = { http: m.httpUrl, rtmp: m.rtmpUrl, srt: m.srtUrl, rtsp: m.rtsp ? m.rtspUrl : "" };
process.stdout.write(`LISTENING ${JSON.stringify(urls)}\n`);
// SIGUSR2: print `process.memoryUsage()` (the bench's RSS breakdown), after a full GC when exposed.
process.on("SIGUSR2", () => {
  (globalThis as { gc?: () => void }).gc?.();
  process.stdout.write(`MEMORY ${JSON.stringify(process.memoryUsage())}\n`);
});
process.on("SIGTERM", () => {
  m.close().then(() => process.exit(0));
});
