/** Server implementation (spec server-server version.yaml). */
import { readFileSync } from "node:fs";
import type { Route } from "../http/types.ts";

const VERSION = (
  JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

export const versionRoutes: Route[] = [
  /** GET /_matrix/federation/v1/version — name and version of this implementation; no authentication (spec). */
  {
    method: "GET",
    paths: ["/_matrix/federation/v1/version"],
    auth: "none",
    async handler() {
      return { json: { server: { name: "ami-streams", version: VERSION } } };
    },
  },
];
