/** Absolute path of the CLI launcher (`bin/ami-streams.mjs` -> `bin/ami-streams.ts`), used to spawn the supervisor and services. */
import { fileURLToPath } from "node:url";

export const binEntry: string = fileURLToPath(new URL("../../bin/ami-streams.mjs", import.meta.url));
export const repoRoot: string = fileURLToPath(new URL("../../", import.meta.url));
