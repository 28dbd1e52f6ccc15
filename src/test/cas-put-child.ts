/**
 * A process that puts `size` seeded bytes into the store at `root` (argv: root size [packMaxBytes]), for the kill -9 test:
 * it prints "putting" once it has started and "done <id>" if it ever finishes.
 */
import { FsCasStore } from "../cas/fs-backend.ts";
import { prngStream } from "../core/prng.ts";

const [root, size, packMax] = process.argv.slice(2);
const store = new FsCasStore({
  root,
  params: { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 },
  fsync: true,
  packMaxBytes: packMax ? Number(packMax) : undefined,
});
process.stdout.write("putting\n");
const r = await store.put(prngStream("crash", Number(size)));
process.stdout.write(`done ${r.id}\n`);
