/**
 * End-to-end encryption in the browser: matrix-js-sdk's Rust crypto (matrix-sdk-crypto-wasm), its store in
 * IndexedDB, one database per user and device so switching accounts never mixes keys.
 */
import type { MatrixClient } from "matrix-js-sdk";

/**
 * Whether the homeserver offers the key APIs: an empty `keys/upload` is valid and answers the key counts, a
 * server without E2EE answers 404 M_UNRECOGNIZED. Probing keeps the client usable on such servers.
 */
async function serverHasKeyApi(client: MatrixClient): Promise<boolean> {
  try {
    const r = await fetch(`${client.baseUrl}/_matrix/client/v3/keys/upload`, {
      method: "POST",
      headers: { Authorization: `Bearer ${client.getAccessToken()}`, "Content-Type": "application/json" },
      body: "{}",
    });
    return r.ok;
  } catch {
    return false;
  }
}

/** Start Rust crypto when the browser and the server can; returns whether encryption is on. */
export async function startCrypto(client: MatrixClient): Promise<boolean> {
  if (typeof WebAssembly === "undefined" || typeof indexedDB === "undefined") return false;
  if (!(await serverHasKeyApi(client))) return false;
  try {
    await client.initRustCrypto({ cryptoDatabasePrefix: `ami-chat:${client.getUserId()}:${client.getDeviceId()}` });
    return true;
  } catch (e) {
    console.error("crypto did not start; continuing without encryption", e);
    return false;
  }
}
