/**
 * The routing table across restarts: `<stateDir>/dht.json` holds our node id (a node that keeps its id keeps its
 * place in other nodes' tables) and the table's nodes. Written to a temporary file and renamed, so a crash leaves
 * the old file; a missing, corrupt or foreign file is ignored (the node starts fresh) rather than fatal.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isId, isUsableAddr, type NodeInfo } from "./id.ts";

export interface DhtState {
  id: Buffer;
  nodes: NodeInfo[];
}

const FILE = "dht.json";
const MAX_NODES = 2000;

export async function loadState(dir: string): Promise<DhtState | undefined> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, FILE), "utf8"));
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const r = raw as { id?: unknown; nodes?: unknown };
  const id = typeof r.id === "string" && /^[0-9a-f]{40}$/.test(r.id) ? Buffer.from(r.id, "hex") : undefined;
  if (!isId(id)) return undefined;
  const nodes: NodeInfo[] = [];
  for (const n of Array.isArray(r.nodes) ? r.nodes.slice(0, MAX_NODES) : []) {
    const x = n as { id?: unknown; host?: unknown; port?: unknown };
    if (typeof x.id !== "string" || !/^[0-9a-f]{40}$/.test(x.id)) continue;
    if (typeof x.host !== "string" || typeof x.port !== "number" || !isUsableAddr(x.host, x.port)) continue;
    nodes.push({ id: Buffer.from(x.id, "hex"), host: x.host, port: x.port });
  }
  return { id, nodes };
}

export async function saveState(dir: string, s: DhtState): Promise<void> {
  await mkdir(dir, { recursive: true });
  const body = JSON.stringify({
    id: s.id.toString("hex"),
    savedAt: new Date().toISOString(),
    nodes: s.nodes.slice(0, MAX_NODES).map((n) => ({ id: n.id.toString("hex"), host: n.host, port: n.port })),
  });
  const tmp = join(dir, `${FILE}.${process.pid}.tmp`);
  await writeFile(tmp, body);
  await rename(tmp, join(dir, FILE));
}
