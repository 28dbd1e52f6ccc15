/**
 * `npm run bench`: every benchmark, one after the other (they share the machine), then one table.
 * Each figure is printed next to a baseline measured in the same run. Benchmarks never gate CI.
 * Flags: --json (also print the rows as JSON), --markdown (also print a markdown table), or names to pick
 * benches (latency, throughput, dag-persist, initial-sync, memory, search, websocket, push, federation-auth,
 * federation-delivery, federation-devicelists, federation-join, shares-room, cas, backup, cdn, cdn-h2, thumbnail, startup,
 * state-res, edge, scale-out, cluster-forward, shared-ratelimit, p2p, media, media-p2p, dht).
 */
import { cpus, totalmem } from "node:os";
import { type BenchResult, printTable } from "./matrix/lib.ts";

const benches: Record<string, () => Promise<BenchResult[]>> = {
  latency: async () => (await import("./matrix/sync-latency.ts")).run(),
  throughput: async () => (await import("./matrix/throughput.ts")).run(),
  "dag-persist": async () => (await import("./matrix/dag-persist.ts")).run(),
  "initial-sync": async () => {
    const m = await import("./matrix/initial-sync.ts");
    return [...(await m.run("sqlite")), ...(await m.run("postgres"))];
  },
  memory: async () => (await import("./matrix/memory.ts")).run(),
  search: async () => {
    const m = await import("./matrix/search.ts");
    return [...(await m.run("sqlite")), ...(await m.run("postgres"))];
  },
  websocket: async () => (await import("./matrix/websocket.ts")).run(),
  push: async () => (await import("./matrix/push.ts")).run(),
  "federation-auth": async () => (await import("./matrix/federation-auth.ts")).run(),
  // hs1 -> hs2 to-device delivery over a federation transaction, against a local to-device delivery (issue 12).
  "federation-delivery": async () => (await import("./matrix/federation-delivery.ts")).run(),
  // keys/query of a remote user from the device-list cache vs uncached, and device-list change delivery (issue 12).
  "federation-devicelists": async () => (await import("./matrix/federation-devicelists.ts")).run(),
  "shares-room": async () => (await import("./matrix/shares-room.ts")).run(),
  // hs2 joins a 5,000-member, 20,000-event room of hs1 over federation, against a local join of it (issue 12).
  "federation-join": async () => (await import("./matrix/federation-join.ts")).run(),
  cas: async () => (await import("./cas.ts")).run(),
  // backup create / restore of 100k events (extrapolated per 1 M) and of 64 MiB of media, against the bare tools.
  backup: async () => {
    const m = await import("./backup.ts");
    return [...(await m.run("sqlite")), ...(await m.run("postgres")), ...(await m.runStore())];
  },
  // CDN edge (issue 14): cache-hit req/s and p99 for a 16 KB object against nginx proxy_cache (one worker), and the
  // memory tier's hit ratio (W-TinyLFU) against LRU on Zipf 0.7/0.9/1.1 with caches of 0.1/1/10 % of the objects.
  cdn: async () => [
    ...(await (await import("./cdn/hit-rps.ts")).run()),
    ...(await (await import("./cdn/hit-ratio.ts")).run()),
  ],
  // CDN edge over TLS (issue 14): cache-hit req/s over HTTP/2 against HTTP/1.1 on the same TLS port (h2load).
  "cdn-h2": async () => (await import("./cdn/h2-rps.ts")).run(),
  thumbnail: async () => (await import("./thumbnail.ts")).run(),
  startup: async () => (await import("./startup.ts")).run(),
  // Edge functions (issue 14): deploy -> first 200 and warm per-request overhead, against workerd alone.
  edge: async () => (await import("./edge/functions.ts")).run(),
  // State resolution v2 of two 500-event forks of a 5,000-member room (issue 12), against a plain transcription.
  "state-res": async () => (await import("./matrix/state-res.ts")).run(),
  // Homeserver workers (issue 13): events/s on 1, 2, 3 processes over one PostgreSQL; send -> sync across workers.
  "scale-out": async () => (await import("./matrix/scale-out.ts")).run(),
  // The forwarding hop between workers alone (issue 13): CPU per forwarded send (forwarder + owner).
  "cluster-forward": async () => (await import("./matrix/cluster-forward.ts")).run(),
  // The rate-limit buckets workers share in Redis (issue 13): one take's latency and takes/s, against a Redis PING.
  "shared-ratelimit": async () => (await import("./matrix/shared-ratelimit.ts")).run(),
  // Live media (needs ffmpeg and nginx): glass-to-glass latency (HLS, WebRTC; WebRTC from a B-frame source in
  // Chromium), WebRTC re-encode CPU of H.265 with keyframes on demand (against an IDR a second), CPU per remuxed stream, 500 HLS viewers, 100 HTTP-FLV viewers (against nginx-rtmp), recording playback
  // (a 60 s get against nginx static), MPEG-TS mux/remux (against ffmpeg -c copy), SRT ingest CPU (against the
  // ffmpeg listener it replaced), playlist/segment req/s (against nginx static) and the service's RSS.
  // BitTorrent (issue 15): 20 leechers of ours vs node:http to 20 clients; a 256 MiB download, ours vs aria2c.
  p2p: async () => (await import("./p2p/swarm.ts")).run(),
  media: async () => [
    ...(await (await import("./media/latency.ts")).run()),
    ...(await (await import("./media/whep-latency.ts")).run()),
    ...(await (await import("./media/whep-bframes.ts")).run()),
    ...(await (await import("./media/hevc-keyframes.ts")).run()),
    ...(await (await import("./media/rtsp-latency.ts")).run()),
    ...(await (await import("./media/cpu.ts")).run()),
    ...(await (await import("./media/rtsp-cpu.ts")).run()),
    ...(await (await import("./media/viewers.ts")).run()),
    ...(await (await import("./media/flv-viewers.ts")).run()),
    ...(await (await import("./media/abr.ts")).run()),
    ...(await (await import("./media/playback.ts")).run()),
    ...(await (await import("./media/ts-mux.ts")).run()),
    ...(await (await import("./media/srt-ingest.ts")).run()),
    ...(await (await import("./media/playlist-rps.ts")).run()),
  ],
  // HLS viewer mesh (issue 15; needs ffmpeg and Chromium): offload ratio and origin bytes/s for N browser viewers
  // (P2P_VIEWERS, default 10), against the same viewers over HTTP only.
  "media-p2p": async () => (await import("./media/p2p-offload.ts")).run(),
  // Kademlia DHT (issue 15): lookup latency, hops and success vs n (100, 300, 1,000 in-memory nodes; 100, 300 on UDP),
  // against one get_peers round trip straight to a node holding the peer.
  dht: async () => (await import("./p2p/dht.ts")).run(),
};

const args = process.argv.slice(2);
const picked = args.filter((a) => !a.startsWith("--"));
const rows: BenchResult[] = [];
const started = Date.now();
for (const [name, run] of Object.entries(benches)) {
  if (picked.length && !picked.includes(name)) continue;
  const t = Date.now();
  process.stderr.write(`bench ${name}...\n`);
  rows.push(...(await run()));
  process.stderr.write(`bench ${name}: ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
}

const machine = `${cpus().length} x ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`;
console.log(
  `\nami-streams benchmarks, ${new Date().toISOString()}, ${machine}, ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
);
printTable(rows);
if (args.includes("--markdown")) {
  console.log("\n| bench | metric | value | target | met | same-run baseline |\n|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.bench} | ${r.metric} | ${r.value} ${r.unit} | ${r.target} | ${r.met === null ? "" : r.met ? "yes" : "**no**"} | ${r.baseline} |`,
    );
  }
}
if (args.includes("--json")) console.log(JSON.stringify({ machine, date: new Date().toISOString(), rows }));
