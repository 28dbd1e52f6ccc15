/** The `web` service as the supervisor sees it: the chat client for people, next to the homeserver. */
import type { IncomingMessage } from "node:http";
import type { Config } from "../config.ts";
import { baseUrl, isWildcardHost } from "../core/http/address.ts";
import type { ServiceDef } from "../core/service.ts";

/** The host name in a Host header, or null when it is not one (a Host is client input: never throw on it). */
function hostName(hostHeader: string): string | null {
  try {
    return new URL(`http://${hostHeader}`).hostname || null;
  } catch {
    return null;
  }
}

/**
 * Where browsers reach the homeserver: matrix.publicBaseUrl, else matrix.host:port; when the homeserver listens
 * on a wildcard address, the host name the browser used for this page, with the homeserver's port.
 */
export function homeserverUrlFor(config: Config, req?: IncomingMessage): string {
  const m = config.matrix;
  if (m.publicBaseUrl) return m.publicBaseUrl.replace(/\/+$/, "");
  const h = isWildcardHost(m.host) && req?.headers.host ? hostName(req.headers.host) : null;
  // A wildcard listen address itself is not reachable: baseUrl shows it as loopback.
  return baseUrl("http", h ?? m.host, m.port);
}

export const webService: ServiceDef = {
  name: "web",
  summary: "Web chat client for people (log in, rooms, messages, files, encrypted rooms)",
  // A chat client needs a homeserver: ours, or another one named by matrix.publicBaseUrl.
  enabled: (c) => c.web.enabled && (c.matrix.enabled || c.matrix.publicBaseUrl !== null),
  baseUrl: (c) => baseUrl("http", c.web.host, c.web.port),
  describe: (c) => [
    `web: chat client at ${baseUrl("http", c.web.host, c.web.port)} (homeserver ${homeserverUrlFor(c)})`,
  ],
  async start(config, { log }) {
    // Loaded here, not at the top: the CLI lists services on every call.
    const { chatDist, ensureChatBuilt } = await import("./build.ts");
    const { startWebServer } = await import("./server.ts");
    const state = await ensureChatBuilt(log);
    if (state !== "fresh") log.info("web client build was " + state + "; rebuilt");
    const web = await startWebServer({
      host: config.web.host,
      port: config.web.port,
      root: chatDist,
      homeserverUrl: (req) => homeserverUrlFor(config, req),
      serverName: config.matrix.serverName,
      log,
    });
    return { url: web.url, close: () => web.close() };
  },
};
