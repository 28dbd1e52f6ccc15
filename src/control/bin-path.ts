/** Absolute path of the CLI entry (`bin/ami-streams.ts`), used to spawn the supervisor and services. */
import { fileURLToPath } from "node:url";

export const binEntry: string = fileURLToPath(new URL("../../bin/ami-streams.ts", import.meta.url));
export const repoRoot: string = fileURLToPath(new URL("../../", import.meta.url));
