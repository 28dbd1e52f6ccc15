/**
 * Our own key response (spec server-server "Publishing Keys"): the current signing key in verify_keys, keys from
 * `federation.oldVerifyKeys` in old_verify_keys, valid_until_ts = now + keyValidityMs, signed by the current key.
 */
import type { MatrixConfig } from "../config.ts";
import { type SigningKey, signJson } from "../events/signing.ts";

export interface ServerKeysResponse {
  server_name: string;
  verify_keys: Record<string, { key: string }>;
  old_verify_keys: Record<string, { key: string; expired_ts: number }>;
  valid_until_ts: number;
  signatures: Record<string, Record<string, string>>;
}

export function ourKeysResponse(
  serverName: string,
  key: SigningKey,
  cfg: MatrixConfig["federation"],
  now = Date.now(),
): ServerKeysResponse {
  const old: ServerKeysResponse["old_verify_keys"] = {};
  for (const [id, k] of Object.entries(cfg.oldVerifyKeys)) if (id !== key.keyId) old[id] = { ...k };
  return signJson(
    {
      server_name: serverName,
      verify_keys: { [key.keyId]: { key: key.publicKeyBase64 } },
      old_verify_keys: old,
      valid_until_ts: now + cfg.keyValidityMs,
    },
    serverName,
    key,
  ) as ServerKeysResponse;
}
