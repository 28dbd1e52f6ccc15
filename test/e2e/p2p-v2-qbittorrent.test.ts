/**
 * A real BitTorrent v2 client both ways, by v2 magnet. qBittorrent 4.5 (libtorrent 2.0.8) seeds a v2-only folder
 * whose biggest file has 4,500 pieces of 16 KiB (more than one 4,096-hash span, so its piece layer comes in two
 * spans, each with uncle hashes counted libtorrent's way); our node gets the info dict by ut_metadata and the
 * piece layers by BEP 52 hash requests, checks them against each file's pieces root, and downloads every file
 * intact. Then qBittorrent forgets the torrent and its files and fetches the same btmh magnet from us alone:
 * its hash requests (spans of 512 with its own proof layers) are answered from the layers we fetched.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000).unref())]);
    qbt.kill("SIGKILL");
  }
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

test("qBittorrent seeds a v2-only folder (a file of 4,500 pieces); we fetch it by btmh, then it fetches it from us", {
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
    "big.bin": randomBytes(4499 * 16384 + 5),
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
  assert.equal(
    t.meta?.pieceLayers.get(t.meta.files.find((f) => f.path[0] === "big.bin")?.piecesRoot?.toString("hex") ?? "")
      ?.length,
    4500 * 32,
  );
  const cas = (node as unknown as { o: { cas: { get(id: string): AsyncIterable<Buffer> } } }).o.cas;
  for (const [i, f] of (t.meta?.files ?? []).entries()) {
    const parts: Buffer[] = [];
    for await (const c of cas.get(t.storage?.fileIds?.[i] as string)) parts.push(c);
    assert.deepEqual(Buffer.concat(parts), files[f.path.join("/")], f.path.join("/"));
  }

  // qBittorrent drops the torrent and its files, then fetches the magnet from us: metadata, piece layers, pieces.
  const del = new URLSearchParams({ hashes: hash.slice(0, 40), deleteFiles: "true" });
  assert.ok((await fetch(`${api}/torrents/delete`, { method: "POST", body: del })).ok);
  for (let i = 0; i < 100; i++) {
    const list = (await (await fetch(`${api}/torrents/info`)).json()) as { hash: string }[];
    if (!list.some((x) => x.hash === hash.slice(0, 40))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const back = join(dir, "back");
  const add = new URLSearchParams({
    urls: `magnet:?xt=urn:btmh:1220${hash}&x.pe=127.0.0.1:${node.port}`,
    savepath: back,
  });
  assert.ok((await fetch(`${api}/torrents/add`, { method: "POST", body: add })).ok, "qBittorrent took the magnet");
  let info: { state: string; progress: number } | undefined;
  for (let i = 0; i < 300 && !(info && info.progress === 1 && /UP$/.test(info.state)); i++) {
    const list = (await (await fetch(`${api}/torrents/info`)).json()) as {
      hash: string;
      state: string;
      progress: number;
    }[];
    info = list.find((x) => x.hash === hash.slice(0, 40));
    await new Promise((r) => setTimeout(r, 100));
  }
  // Which pieces it lacks, if any (e.g. the short end of a file, should we refuse its whole-piece requests).
  const states = (await (await fetch(`${api}/torrents/pieceStates?hash=${hash.slice(0, 40)}`)).json()) as number[];
  const lacking = states.flatMap((x, i) => (x === 2 ? [] : [i]));
  assert.deepEqual(lacking.slice(0, 10), [], `pieces qBittorrent lacks (state ${info?.state})`);
  assert.equal(info?.progress, 1, `qBittorrent fetched the folder from us (state ${info?.state})`);
  for (const [p, b] of Object.entries(files)) assert.deepEqual(readFileSync(join(back, "folder", p)), b, p);
});
