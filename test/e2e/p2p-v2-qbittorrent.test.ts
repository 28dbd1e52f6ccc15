/**
 * A real BitTorrent v2 client seeds, we fetch by v2 magnet: qBittorrent (libtorrent 2.0) seeds a v2-only folder
 * whose biggest file has 1,301 pieces; our node gets the info dict by ut_metadata and the piece layers by BEP 52
 * hash requests from it, checks them against each file's pieces root, and downloads every file intact.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createTorrent, listSource } from "../../src/p2p/create.ts";
import type { P2pNode } from "../../src/p2p/node.ts";
import { freePort } from "../../src/test/cli.ts";
import { makeNode } from "../../src/test/p2p.ts";

const dir = mkdtempSync(join(tmpdir(), "p2p-v2-qbt-"));
let qbt: ChildProcess | undefined;
let node: P2pNode | undefined;
after(async () => {
  await node?.close().catch(() => {});
  // qBittorrent writes its profile while it exits: wait for it before removing the folder.
  if (qbt && qbt.exitCode === null && qbt.signalCode === null) {
    const exited = new Promise((r) => qbt?.once("exit", r));
    qbt.kill();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    qbt.kill("SIGKILL");
  }
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

test("qBittorrent seeds a v2-only folder; we fetch it by its btmh magnet (piece layers by hash requests)", {
  timeout: 60_000,
}, async () => {
  const peerPort = await freePort();
  const webPort = await freePort();
  const conf = join(dir, "prof", "qBittorrent", "config");
  mkdirSync(conf, { recursive: true });
  writeFileSync(
    join(conf, "qBittorrent.conf"),
    [
      "[LegalNotice]",
      "Accepted=true",
      "[BitTorrent]",
      `Session\\Port=${peerPort}`,
      "Session\\DHTEnabled=false",
      "Session\\LSDEnabled=false",
      "Session\\PeXEnabled=false",
      "[Preferences]",
      `WebUI\\Port=${webPort}`,
      "WebUI\\LocalHostAuth=false",
      "WebUI\\HostHeaderValidation=false",
      "WebUI\\CSRFProtection=false",
      `Connection\\PortRangeMin=${peerPort}`,
      "",
    ].join("\n"),
  );
  qbt = spawn("qbittorrent-nox", [`--profile=${join(dir, "prof")}`], { stdio: "ignore" });
  const api = `http://127.0.0.1:${webPort}/api/v2`;
  const src = join(dir, "data", "folder");
  mkdirSync(join(src, "sub"), { recursive: true });
  const files: Record<string, Buffer> = {
    "big.bin": randomBytes(1300 * 16384 + 5),
    "sub/small.bin": randomBytes(70_000),
    "tiny.txt": Buffer.from("under one piece\n"),
  };
  for (const [p, b] of Object.entries(files)) writeFileSync(join(src, p), b);
  const { torrent, meta } = await createTorrent(await listSource(src), "folder", { version: "v2", pieceLength: 16384 });
  const hash = (meta.infohashV2 as Buffer).toString("hex");
  let added = false;
  for (let i = 0; i < 100 && !added; i++) {
    const fd = new FormData();
    fd.append("torrents", new Blob([new Uint8Array(torrent)]), "folder.torrent");
    fd.append("savepath", join(dir, "data"));
    added = await fetch(`${api}/torrents/add`, { method: "POST", body: fd }).then(
      (r) => r.ok,
      () => false,
    );
    if (!added) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(added, "qBittorrent's web API took the torrent");
  let state = "";
  for (let i = 0; i < 150 && !/UP$/.test(state); i++) {
    const list = (await (await fetch(`${api}/torrents/info`)).json()) as { hash: string; state: string }[];
    state = list.find((t) => t.hash === hash.slice(0, 40))?.state ?? "";
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.match(state, /UP$/, "qBittorrent checked the files and seeds");
  await new Promise((r) => setTimeout(r, 1000)); // libtorrent refuses peers for a moment after its check
  node = makeNode(join(dir, "us"), { host: "127.0.0.1" });
  await node.start();
  const t = node.add(`magnet:?xt=urn:btmh:1220${hash}&x.pe=127.0.0.1:${peerPort}`);
  await t.done();
  assert.equal(t.meta?.version, "v2");
  assert.equal(t.meta?.pieceLayers.size, 2, "layers of the two files longer than a piece came from qBittorrent");
  assert.equal(t.stats().hashFailures, 0);
  const cas = (node as unknown as { o: { cas: { get(id: string): AsyncIterable<Buffer> } } }).o.cas;
  for (const [i, f] of (t.meta?.files ?? []).entries()) {
    const parts: Buffer[] = [];
    for await (const c of cas.get(t.storage?.fileIds?.[i] as string)) parts.push(c);
    assert.deepEqual(Buffer.concat(parts), files[f.path.join("/")], f.path.join("/"));
  }
});
