// Launcher in plain JavaScript: it turns on Node's on-disk compile cache (which also keeps the stripped
// TypeScript) before any .ts file loads, so that warm starts never load the type-stripping compiler
// (~20 MB resident, most of the start-up time). The program itself is bin/ami-streams.ts.
import { enableCompileCache } from "node:module";

enableCompileCache();
await import("./ami-streams.ts");
