/**
 * Encrypted attachments (spec: "Sending encrypted attachments"): AES-CTR-256 with a random key and a 64-bit
 * counter, the SHA-256 of the ciphertext, the key as a JWK. The media repository only ever sees ciphertext.
 */

export interface EncryptedFile {
  url: string;
  key: JsonWebKey & { k: string };
  iv: string;
  hashes: { sha256: string };
  v: "v2";
}

const unpadded = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes)).replace(/=+$/, "");
const fromB64 = (s: string): Uint8Array<ArrayBuffer> => {
  const std = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(std + "=".repeat((4 - (std.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
};

export async function encryptAttachment(
  plain: ArrayBuffer,
): Promise<{ data: ArrayBuffer; info: Omit<EncryptedFile, "url"> }> {
  // The high 8 bytes of the IV are random, the low 8 are the block counter and start at zero.
  const iv = new Uint8Array(16);
  crypto.getRandomValues(iv.subarray(0, 8));
  const key = await crypto.subtle.generateKey({ name: "AES-CTR", length: 256 }, true, ["encrypt", "decrypt"]);
  const data = await crypto.subtle.encrypt({ name: "AES-CTR", counter: iv, length: 64 }, key, plain);
  const jwk = (await crypto.subtle.exportKey("jwk", key)) as JsonWebKey & { k: string };
  const sha = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return {
    data,
    info: {
      key: { kty: "oct", key_ops: ["encrypt", "decrypt"], alg: "A256CTR", k: jwk.k, ext: true },
      iv: unpadded(iv),
      hashes: { sha256: unpadded(sha) },
      v: "v2",
    },
  };
}

export async function decryptAttachment(cipher: ArrayBuffer, file: EncryptedFile): Promise<ArrayBuffer> {
  const sha = new Uint8Array(await crypto.subtle.digest("SHA-256", cipher));
  if (unpadded(sha) !== file.hashes.sha256.replace(/=+$/, "")) throw new Error("attachment hash mismatch");
  const key = await crypto.subtle.importKey("jwk", { ...file.key, key_ops: ["encrypt", "decrypt"] }, "AES-CTR", false, [
    "decrypt",
  ]);
  return crypto.subtle.decrypt({ name: "AES-CTR", counter: fromB64(file.iv), length: 64 }, key, cipher);
}
