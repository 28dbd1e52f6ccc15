import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { IDBFactory } from "fake-indexeddb";
import {
  deleteDatabases,
  dumpDatabases,
  encodeSnapshot,
  readSnapshotFile,
  restoreDatabases,
  writeSnapshotFile,
} from "./idb-snapshot.ts";

const req = <T>(r: IDBRequest<T>) =>
  new Promise<T>((ok, no) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => no(r.error);
  });

function openDb(f: IDBFactory, name: string, version?: number, upgrade?: (db: IDBDatabase) => void) {
  const r = version === undefined ? f.open(name) : f.open(name, version);
  r.onupgradeneeded = () => upgrade?.(r.result);
  return req(r);
}

test("databases round-trip through a snapshot file: schema, version, keys, binary values", async () => {
  const a = new IDBFactory();
  const db = await openDb(a, "p-crypto", 7, (d) => {
    const s = d.createObjectStore("inline", { keyPath: ["room", "id"] });
    s.createIndex("by_room", "room", { unique: false });
    d.createObjectStore("outofline");
    d.createObjectStore("auto", { autoIncrement: true });
  });
  const tx = db.transaction(["inline", "outofline", "auto"], "readwrite");
  tx.objectStore("inline").put({ room: "!r", id: "s1", key: new Uint8Array([1, 2, 3]) });
  tx.objectStore("outofline").put({ v: new Map([["k", 1]]) }, ["a", 2]);
  tx.objectStore("auto").put("first");
  await new Promise((ok) => (tx.oncomplete = ok));
  db.close();
  await openDb(a, "other-db", 1, (d) => d.createObjectStore("x"));

  const dir = mkdtempSync(join(tmpdir(), "ami-idb-"));
  try {
    const file = join(dir, "store.v8");
    writeSnapshotFile(file, encodeSnapshot(await dumpDatabases(a, ["p-"])));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const snap = readSnapshotFile(file);
    assert.ok(snap);
    assert.deepEqual(
      snap.databases.map((d) => d.name),
      ["p-crypto"],
    );

    const b = new IDBFactory();
    await restoreDatabases(b, snap);
    const db2 = await openDb(b, "p-crypto");
    assert.equal(db2.version, 7);
    const t2 = db2.transaction(["inline", "outofline", "auto"], "readwrite");
    const inline = t2.objectStore("inline");
    assert.deepEqual(await req(inline.index("by_room").getAll("!r")), [
      { room: "!r", id: "s1", key: new Uint8Array([1, 2, 3]) },
    ]);
    assert.deepEqual(await req(t2.objectStore("outofline").get(["a", 2])), { v: new Map([["k", 1]]) });
    assert.equal(await req(t2.objectStore("auto").put("second")), 2, "the key generator continues");
    db2.close();

    await deleteDatabases(b, "p-");
    assert.deepEqual(await b.databases(), []);
    assert.equal(readSnapshotFile(join(dir, "missing")), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
