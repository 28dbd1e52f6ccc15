/** The `stream.*` ops talk to the running media service over its HTTP API (pulls etc. live there, not in the CLI). */
import { readControlToken } from "../../control/client.ts";
import { ensureSupervisor, waitHealthy } from "../../control/daemon.ts";
import { AmiError, type ErrorCode } from "../../core/errors.ts";
import type { OpContext } from "../../core/ops.ts";
import { mediaService } from "../service.ts";

export const NOT_RUNNING =
  "media is not running: enable it (media.enabled: true) and start it with `ami-streams media start`";

export const encodePath = (p: string): string => p.split("/").map(encodeURIComponent).join("/");

/** One raw request to the media service's HTTP listener, with the control token (callers read the body). */
export async function send(ctx: OpContext, method: string, path: string, body?: unknown): Promise<Response> {
  const token = readControlToken(ctx.config, ctx.paths);
  return fetch(mediaService.baseUrl(ctx.config) + path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: ctx.signal,
  });
}

/** Start the media service under the supervisor (as `ami-streams media start` would). */
async function startMedia(ctx: OpContext): Promise<void> {
  if (!mediaService.enabled(ctx.config)) throw new AmiError("AMI_NOT_RUNNING", NOT_RUNNING);
  const { client, spawned } = await ensureSupervisor(ctx, ["media"]);
  if (!spawned) await client.request("POST", "/api/services/media/start");
  await waitHealthy(client, ["media"], ctx);
}

/**
 * One request to the media service. `autostart`: a change (stream start, record, restream) starts the service
 * first when it is not running; reads just report that it is not.
 */
export async function mediaRequest<T>(
  ctx: OpContext,
  method: "GET" | "POST" | "DELETE",
  path: string,
  body?: unknown,
  autostart = false,
): Promise<T> {
  let res: Response;
  try {
    res = await send(ctx, method, path, body);
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    if (!autostart) throw new AmiError("AMI_NOT_RUNNING", NOT_RUNNING);
    await startMedia(ctx);
    res = await send(ctx, method, path, body);
  }
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    const code = (typeof json.errcode === "string" ? json.errcode : "AMI_UNAVAILABLE") as ErrorCode;
    const message = typeof json.error === "string" ? json.error : `media answered ${res.status} for ${path}`;
    throw new AmiError(code, message, {}, res.status);
  }
  return json as T;
}
