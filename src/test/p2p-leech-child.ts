/**
 * A leecher in its own process, for the p2p resume kill -9 test (argv: dir torrentFile): it starts a node on
 * `dir` with resume on, fetches the torrent, and prints its piece count as `have <n>` lines until it is killed.
 */
import { readFileSync } from "node:fs";
import { makeNode } from "./p2p.ts";

const [dir, torrentFile] = process.argv.slice(2) as [string, string];
const node = makeNode(dir, { host: "127.0.0.1", resume: true });
await node.start();
const t = node.add(readFileSync(torrentFile));
setInterval(() => process.stdout.write(`have ${t.stats().have}\n`), 50);
