/**
 * matrix-bot-sdk 0.8 for tests. Its index loads @matrix-org/matrix-sdk-crypto-nodejs at import, whose native binary
 * is downloaded by an install script (no platform package on npm), so it cannot load on a machine that installs with
 * `npm ci` and no scripts. The bot-sdk paths tested here (plain HTTP client calls) never touch crypto: that one
 * module is replaced by an object whose every function throws, so a test that did reach crypto would fail loudly.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

function withoutNativeCrypto(): void {
  const botSdk = require.resolve("matrix-bot-sdk");
  const crypto = createRequire(botSdk).resolve("@matrix-org/matrix-sdk-crypto-nodejs");
  if (require.cache[crypto]) return;
  const unavailable = () => {
    throw new Error("@matrix-org/matrix-sdk-crypto-nodejs is not available in these tests");
  };
  const m = new (require("node:module") as typeof import("node:module"))(crypto) as NodeJS.Module;
  m.filename = crypto;
  m.loaded = true;
  m.exports = new Proxy({}, { get: (_t, key) => (key === "__esModule" ? false : unavailable) });
  require.cache[crypto] = m;
}

withoutNativeCrypto();
const sdk: typeof import("matrix-bot-sdk") = require("matrix-bot-sdk");
export const { MatrixClient, MemoryStorageProvider, LogService, LogLevel } = sdk;
LogService.setLevel(LogLevel.ERROR);
