/** The `web` service as the supervisor sees it: the chat client for people, next to the homeserver. */
import type { IncomingMessage } from "node:http";
import type { Config } from "../core/config.ts";
import type { ServiceDef } from "../core/service.ts";

const hostPort = (host: string, port: number) => `${host.includes(":") ? `[${host}]` : host}:${port}`;
const WILDCARD = new Set(["0.0.0.0", "::", "[::]"]);

/**
 * Where browsers reach the homeserver: matrix.publicBaseUrl, else matrix.host:port; when the homeserver listens
 * on a wildcard address, the host name the browser used for this page, with the homeserver's port.
 */
export function homeserverUrlFor(config: Config, req?: IncomingMessage): string {
  const m = config.matrix;
  if (m.publicBaseUrl) return m.publicBaseUrl.replace(/\/+$/, "");
  if (WILDCARD.has(m.host) && req?.headers.host) {
    const h = new URL(`http://${req.headers.host}`).hostname;
    return `http://${hostPort(h.replace(/^\[|\]$/g, ""), m.port)}`;
  }
  return `http://${hostPort(m.host, m.port)}`;
}

export const webService: ServiceDef = {
  name: "web",
  summary: "Web chat client for people (log in, rooms, messages, files, encrypted rooms)",
  // A chat client needs a homeserver: ours, or another one named by matrix.publicBaseUrl.
  enabled: (c) => c.web.enabled && (c.matrix.enabled || c.matrix.publicBaseUrl !== null),
  baseUrl: (c) => `http://${hostPort(c.web.host, c.web.port)}`,
  describe: (c) => [
    `web: chat client at http://${hostPort(c.web.host, c.web.port)} (homeserver ${homeserverUrlFor(c)})`,
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
