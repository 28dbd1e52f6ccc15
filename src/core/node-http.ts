/**
 * node:http's createServer, loaded with require. An ES `import { createServer } from "node:http"` builds a
 * namespace of all of node:http's exports, which runs its lazy WebSocket/MessageEvent getters and loads
 * Node's bundled undici: ~13 MB resident per process for nothing. Types still come from `import type`.
 */
import { createRequire } from "node:module";

export const { createServer, maxHeaderSize } = createRequire(import.meta.url)(
  "node:http",
) as typeof import("node:http");

/** node:https, loaded only by listeners that terminate TLS (same reason as above). */
export const requireHttps = (): typeof import("node:https") =>
  createRequire(import.meta.url)("node:https") as typeof import("node:https");
