/**
 * `ami-streams test --smoke`: end-to-end checks against the running services. Every service: GET /health.
 * matrix: /versions, a throwaway user via the shared-secret admin API, create a room, send, sync, read it back.
 */
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { OpContext } from "../core/ops.ts";
import { currentStatus } from "./daemon.ts";

export interface SmokeCheck {
  name: string;
  ok: boolean;
  detail: string;
}

async function http(
  method: string,
  url: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; json: any }> {
  const res = await fetch(url, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json };
}

/** The registration shared secret: from config, else a file the homeserver generated in its data dir. */
function sharedSecret(ctx: OpContext): string | undefined {
  const fromConfig = ctx.config.matrix.registration.sharedSecret;
  if (fromConfig) return fromConfig;
  const dir = ctx.paths.serviceData("matrix");
  if (!existsSync(dir)) return undefined;
  const f = readdirSync(dir).find((n) => /shared.?secret/i.test(n));
  return f ? readFileSync(join(dir, f), "utf8").trim() : undefined;
}

async function matrixChecks(base: string, ctx: OpContext, add: (c: SmokeCheck) => void): Promise<void> {
  const v = await http("GET", `${base}/_matrix/client/versions`);
  add({
    name: "matrix: GET /versions",
    ok: v.status === 200 && Array.isArray(v.json?.versions),
    detail: JSON.stringify(v.json?.versions),
  });
  const secret = sharedSecret(ctx);
  if (!secret) {
    add({
      name: "matrix: shared-secret registration",
      ok: false,
      detail: "no shared secret found (config or data dir)",
    });
    return;
  }
  const { json: n } = await http("GET", `${base}/_synapse/admin/v1/register`);
  const user = `smoke-${randomBytes(4).toString("hex")}`;
  const password = randomBytes(12).toString("hex");
  const mac = createHmac("sha1", secret).update(`${n.nonce}\0${user}\0${password}\0notadmin`).digest("hex");
  const reg = await http("POST", `${base}/_synapse/admin/v1/register`, {
    nonce: n.nonce,
    username: user,
    password,
    admin: false,
    mac,
  });
  const token = reg.json?.access_token as string | undefined;
  add({
    name: "matrix: register throwaway user",
    ok: reg.status === 200 && !!token,
    detail: reg.json?.user_id ?? JSON.stringify(reg.json),
  });
  if (!token) return;
  const room = await http("POST", `${base}/_matrix/client/v3/createRoom`, { name: "ami smoke" }, token);
  const roomId = room.json?.room_id as string | undefined;
  add({ name: "matrix: create room", ok: !!roomId, detail: roomId ?? JSON.stringify(room.json) });
  if (!roomId) return;
  const text = `smoke ${Date.now()}`;
  const sent = await http(
    "PUT",
    `${base}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${Date.now()}`,
    { msgtype: "m.text", body: text },
    token,
  );
  add({
    name: "matrix: send message",
    ok: !!sent.json?.event_id,
    detail: sent.json?.event_id ?? JSON.stringify(sent.json),
  });
  const sync = await http("GET", `${base}/_matrix/client/v3/sync?timeout=0`, undefined, token);
  const tl = sync.json?.rooms?.join?.[roomId]?.timeline?.events ?? [];
  add({
    name: "matrix: sync sees the message",
    ok: tl.some((e: any) => e.content?.body === text),
    detail: `${tl.length} timeline event(s)`,
  });
  const msgs = await http(
    "GET",
    `${base}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=10`,
    undefined,
    token,
  );
  const chunk = msgs.json?.chunk ?? [];
  add({
    name: "matrix: read it back (/messages)",
    ok: chunk.some((e: any) => e.content?.body === text),
    detail: `${chunk.length} event(s)`,
  });
}

export async function smoke(ctx: OpContext): Promise<SmokeCheck[]> {
  const checks: SmokeCheck[] = [];
  const add = (c: SmokeCheck) => {
    checks.push(c);
    ctx.print(`${c.ok ? "ok  " : "FAIL"} ${c.name}${c.detail ? `: ${c.detail}` : ""}`);
  };
  const st = await currentStatus(ctx);
  if (!st.supervisor.running) add({ name: "supervisor running", ok: false, detail: "run `ami-streams up` first" });
  // External programs have no GET /health of ours: the supervisor's own health check already judges them.
  for (const s of st.services.filter((x) => x.kind === "program" && x.state !== "stopped"))
    add({ name: `${s.name}: supervisor health check`, ok: s.state === "running", detail: s.state });
  const enabled = st.services.filter((x) => x.enabled && x.kind === "service");
  // It checks what runs: an enabled service that was never started (e.g. only `matrix start`) is named, not failed.
  for (const s of enabled.filter((x) => x.state === "stopped")) ctx.print(`skip ${s.name}: not started`);
  const running = enabled.filter((x) => x.state !== "stopped");
  if (st.supervisor.running && running.length === 0) add({ name: "a service running", ok: false, detail: "none is" });
  for (const s of running) {
    const h = await http("GET", `${s.url}/health`).catch((e: Error) => ({ status: 0, json: e.message }));
    add({ name: `${s.name}: GET /health`, ok: h.status === 200, detail: `${s.state}, HTTP ${h.status}` });
    if (h.status === 200 && s.name === "matrix") {
      await matrixChecks(s.url, ctx, add).catch((e: Error) =>
        add({ name: "matrix: end-to-end", ok: false, detail: e.message }),
      );
    }
  }
  return checks;
}
