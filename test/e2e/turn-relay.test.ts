/**
 * TURN: coturn (Debian's turnserver) supervised by `up`, credentials from the homeserver's /voip/turnServer
 * (checked against the spec's voip.yaml), and two WebRTC peers in Chromium that can only reach each other
 * through the relay (iceTransportPolicy "relay") exchanging data. A wrong password gets no relay; kill -9 of
 * coturn restarts it; `turn credentials` on the CLI.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, test } from "node:test";
import { cli, freePort, json, tempHome, until } from "../../src/test/cli.ts";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { launchChromium } from "./helpers/browser.ts";
import { registerUser } from "./helpers/client.ts";

const turnPort = await freePort();
const hsPort = await freePort();
const minPort = 40000 + Math.floor(Math.random() * 10000);
const h = tempHome({
  control: { port: 0, healthIntervalMs: 200, backoff: { initialMs: 100 } },
  matrix: { port: hsPort, registration: { enabled: true } },
  media: { enabled: false },
  web: { enabled: false },
  // One machine: the peers are on loopback, which the defaults rightly refuse to relay to.
  turn: {
    enabled: true,
    port: turnPort,
    minPort,
    maxPort: minPort + 20,
    allowLoopbackPeers: true,
    deniedPeerIps: [],
  },
});
const env = h.env;
const hs = `http://127.0.0.1:${hsPort}`;
let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;

before(async () => {
  const up = await cli(["up"], { env });
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, new RegExp(`turn: turn:127\\.0\\.0\\.1:${turnPort}\\?transport=udp`));
  browser = await launchChromium({ viewport: { width: 400, height: 300 } });
});
after(async () => {
  await browser?.context.close();
  if (browser) rmSync(browser.profile, { recursive: true, force: true });
  await h.cleanup();
});

type Creds = { username: string; password: string; uris: string[]; ttl: number };

async function turnServer(): Promise<Creds> {
  const s = await registerUser(hs, `caller${Math.floor(Math.random() * 1e6)}`);
  const r = await fetch(`${hs}/_matrix/client/v3/voip/turnServer`, {
    headers: { authorization: `Bearer ${s.accessToken}` },
  });
  const body = await r.json();
  assertSpec("voip.yaml", "/voip/turnServer", "get", r.status, body);
  assert.equal(r.status, 200);
  assert.match(body.username, new RegExp(`^\\d+:${s.userId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
  return body;
}

/** Two peers in one page, relay-only: resolves with the candidate types used and the echoed message, or a failure. */
function relayPair(creds: Creds, timeoutMs: number) {
  return browser!.page.evaluate(
    async ({ creds, timeoutMs }) => {
      const config: RTCConfiguration = {
        iceServers: [{ urls: creds.uris, username: creds.username, credential: creds.password }],
        iceTransportPolicy: "relay",
      };
      const a = new RTCPeerConnection(config);
      const b = new RTCPeerConnection(config);
      const types: string[] = [];
      a.onicecandidate = (e) => {
        if (e.candidate) {
          types.push(e.candidate.type ?? "?");
          b.addIceCandidate(e.candidate);
        }
      };
      b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
      const got = new Promise<string>((resolve) => {
        b.ondatachannel = (e) => {
          e.channel.onmessage = (m) => resolve(String(m.data));
        };
      });
      const ch = a.createDataChannel("relay-test");
      ch.onopen = () => ch.send("through the relay");
      await a.setLocalDescription(await a.createOffer());
      await b.setRemoteDescription(a.localDescription!);
      await b.setLocalDescription(await b.createAnswer());
      await a.setRemoteDescription(b.localDescription!);
      const timeout = new Promise<string>((r) => setTimeout(() => r("timeout"), timeoutMs));
      const message = await Promise.race([got, timeout]);
      const all = new Map<
        string,
        { type?: string; state?: string; nominated?: boolean; localCandidateId?: string; candidateType?: string }
      >();
      (await a.getStats()).forEach((s) => {
        all.set(s.id, s);
      });
      const nominated = [...all.values()].find(
        (s) => s.type === "candidate-pair" && s.state === "succeeded" && s.nominated,
      );
      const pair = nominated?.localCandidateId ? (all.get(nominated.localCandidateId)?.candidateType ?? null) : null;
      a.close();
      b.close();
      return { message, types, pair };
    },
    { creds, timeoutMs },
  );
}

test("status and the CLI: coturn runs under the supervisor; `turn credentials` hands out the same scheme", async () => {
  const st = json(await cli(["status", "--json"], { env }));
  const row = st.services.find((s: { name: string }) => s.name === "turn");
  assert.equal(row.kind, "program");
  assert.equal(row.state, "running");
  const c = json(await cli(["turn", "credentials", "--user", "bot", "--json"], { env }));
  assert.match(c.username, /^\d+:bot$/);
  assert.deepEqual(c.uris, [`turn:127.0.0.1:${turnPort}?transport=udp`, `turn:127.0.0.1:${turnPort}?transport=tcp`]);
});

test("two Chromium peers exchange data through coturn only (relay candidates), with /voip/turnServer credentials", async () => {
  const creds = await turnServer();
  const r = await relayPair(creds, 20_000);
  assert.equal(r.message, "through the relay", JSON.stringify(r));
  assert.ok(r.types.length > 0 && r.types.every((t) => t === "relay"), `candidates: ${r.types.join(",")}`);
  assert.equal(r.pair, "relay");
});

test("a wrong password gets no relay allocation: no candidates, no connection", async () => {
  const creds = await turnServer();
  const r = await relayPair({ ...creds, password: "AAAA" + creds.password.slice(4) }, 5_000);
  assert.equal(r.message, "timeout");
  assert.deepEqual(r.types, []);
});

test("kill -9 of coturn: restarted, and relaying again", async () => {
  const row = () =>
    cli(["status", "--json"], { env }).then((r) => json(r).services.find((s: { name: string }) => s.name === "turn"));
  const first = await row();
  process.kill(first.pid, "SIGKILL");
  await until("coturn restarted", async () => {
    const r = await row();
    return r.state === "running" && r.pid !== first.pid && r.restarts === 1;
  });
  const again = await relayPair(await turnServer(), 20_000);
  assert.equal(again.message, "through the relay");
});

test("the default peer rules refuse to relay into private and loopback ranges", async () => {
  const { readFileSync, writeFileSync } = await import("node:fs");
  const YAML = (await import("yaml")).default;
  const config = YAML.parse(readFileSync(h.configFile, "utf8"));
  config.turn = { enabled: true, port: turnPort, minPort, maxPort: minPort + 20 };
  writeFileSync(h.configFile, YAML.stringify(config));
  const restart = await cli(["turn", "restart"], { env });
  assert.equal(restart.code, 0, restart.stderr);
  const r = await relayPair(await turnServer(), 5_000);
  assert.ok(r.types.includes("relay"), "the allocation itself works");
  assert.equal(r.message, "timeout", "but no data reaches a loopback peer");
});
