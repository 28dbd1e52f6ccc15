/**
 * Build of the embedded chat client. `npm run build:web` (also run by `npm ci` through `prepare`, and by the
 * web service on start when the output is missing or older than the sources) writes web/chat/dist.
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  // Relative asset URLs: the same build works at / and behind a path prefix.
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // matrix-js-sdk alone is ~1 MB minified; the crypto WASM (~8 MB) loads only when crypto starts.
    chunkSizeWarningLimit: 1600,
    sourcemap: false,
  },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
});
