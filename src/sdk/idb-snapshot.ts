/**
 * Persistence for an in-memory IndexedDB (fake-indexeddb) in Node: every database whose name contains a
 * prefix is copied, schema and records, into a plain snapshot that v8.serialize writes to one file, and
 * restored from it before anything opens those databases. The Rust crypto store and matrix-js-sdk's sync
 * store only speak IndexedDB, and Node has none that persists.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { deserialize, serialize } from "node:v8";

interface IndexSnapshot {
  name: string;
  keyPath: string | string[];
  unique: boolean;
  multiEntry: boolean;
}

interface StoreSnapshot {
  name: string;
  keyPath: string | string[] | null;
  autoIncrement: boolean;
  indexes: IndexSnapshot[];
  keys: IDBValidKey[];
  values: unknown[];
}

interface DatabaseSnapshot {
  name: string;
  version: number;
  stores: StoreSnapshot[];
}

export interface Snapshot {
  format: 1;
  databases: DatabaseSnapshot[];
}

const FORMAT = 1;

function done<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function open(factory: IDBFactory, name: string, version?: number, upgrade?: (db: IDBDatabase) => void) {
  return new Promise<IDBDatabase>((resolve, reject) => {
    const req = version === undefined ? factory.open(name) : factory.open(name, version);
    req.onupgradeneeded = () => upgrade?.(req.result);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error(`IndexedDB ${name} is blocked by an open connection`));
  });
}

function txDone(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
  });
}

async function namesWith(factory: IDBFactory, prefix: string): Promise<string[]> {
  return (await factory.databases()).map((d) => d.name ?? "").filter((n) => n.includes(prefix));
}

/** One readonly transaction per database over all its stores: a consistent copy even while others write. */
async function dumpDatabase(factory: IDBFactory, name: string): Promise<DatabaseSnapshot> {
  const db = await open(factory, name);
  try {
    const storeNames = Array.from(db.objectStoreNames);
    const out: DatabaseSnapshot = { name, version: db.version, stores: [] };
    if (storeNames.length === 0) return out;
    const tx = db.transaction(storeNames, "readonly");
    const reads = storeNames.map(async (s) => {
      const store = tx.objectStore(s);
      const indexes = Array.from(store.indexNames).map((n) => {
        const ix = store.index(n);
        return { name: n, keyPath: ix.keyPath, unique: ix.unique, multiEntry: ix.multiEntry };
      });
      const [keys, values] = await Promise.all([done(store.getAllKeys()), done(store.getAll())]);
      return { name: s, keyPath: store.keyPath, autoIncrement: store.autoIncrement, indexes, keys, values };
    });
    out.stores = await Promise.all(reads);
    await txDone(tx);
    return out;
  } finally {
    db.close();
  }
}

/**
 * Copy the databases matching each prefix, in the order of `prefixes`: list a store whose state depends on
 * another (a sync token on the crypto state it implies) first, so the copy never runs ahead of its dependency.
 */
export async function dumpDatabases(factory: IDBFactory, prefixes: readonly string[]): Promise<Snapshot> {
  const databases: DatabaseSnapshot[] = [];
  const seen = new Set<string>();
  for (const p of prefixes)
    for (const name of await namesWith(factory, p)) {
      if (seen.has(name)) continue;
      seen.add(name);
      databases.push(await dumpDatabase(factory, name));
    }
  return { format: FORMAT, databases };
}

/** Drop the databases; a deletion blocked by a connection still open waits for it up to `timeoutMs`. */
export async function deleteDatabases(factory: IDBFactory, prefix: string, timeoutMs = 10_000): Promise<void> {
  for (const name of await namesWith(factory, prefix)) await deleteDatabase(factory, name, timeoutMs);
}

function deleteDatabase(factory: IDBFactory, name: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`IndexedDB ${name} is still open after ${timeoutMs} ms; stop its user first`)),
      timeoutMs,
    );
    const req = factory.deleteDatabase(name);
    req.onsuccess = () => {
      clearTimeout(timer);
      resolve();
    };
    req.onerror = () => {
      clearTimeout(timer);
      reject(req.error);
    };
  });
}

/** Recreate the snapshot's databases (replacing any of the same name) with their schema, version and records. */
export async function restoreDatabases(factory: IDBFactory, snap: Snapshot): Promise<void> {
  for (const d of snap.databases) {
    await deleteDatabase(factory, d.name, 10_000);
    // open() succeeds only after the upgrade transaction (which writes everything) has committed.
    const db = await open(factory, d.name, d.version, (db) => {
      for (const s of d.stores) {
        const store = db.createObjectStore(s.name, { keyPath: s.keyPath, autoIncrement: s.autoIncrement });
        for (const ix of s.indexes)
          store.createIndex(ix.name, ix.keyPath, { unique: ix.unique, multiEntry: ix.multiEntry });
        for (let i = 0; i < s.keys.length; i++) {
          if (s.keyPath === null) store.put(s.values[i], s.keys[i]);
          else store.put(s.values[i]);
        }
      }
    });
    db.close();
  }
}

export function encodeSnapshot(snap: Snapshot): Buffer {
  return serialize(snap);
}

/** Write atomically (temp file, fsync, rename), readable by the owner only. */
export function writeSnapshotFile(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** The snapshot in `path`, or null when there is none. A corrupt file throws: silently losing keys is worse. */
export function readSnapshotFile(path: string): Snapshot | null {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  const snap = deserialize(bytes) as Snapshot;
  if (snap?.format !== FORMAT || !Array.isArray(snap.databases))
    throw new Error(`${path} is not a crypto store snapshot`);
  return snap;
}
