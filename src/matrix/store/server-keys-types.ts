/**
 * The ServerKeyStore: other servers' signing keys as fetched over federation (spec server-server "Retrieving
 * server keys"), cached with their validity so a restart does not refetch every key and a notary can answer
 * `/_matrix/key/v2/query` from what it holds.
 */

export interface ServerKeyRow {
  serverName: string;
  /** "ed25519:abc" */
  keyId: string;
  /** Unpadded base64 Ed25519 public key. */
  publicKey: string;
  /** For a current key: the response's valid_until_ts. For an old one: also its expired_ts (no later use). */
  validUntilTs: number;
  /** Set for a key listed in old_verify_keys: signatures made after this are not accepted. */
  expiredTs: number | null;
  /** When we fetched it. */
  fetchedTs: number;
  /** The server's whole signed response it came in (canonical JSON text), so a notary can hand it on as signed. */
  responseJson: string;
}

export interface ServerKeyStore {
  /** Insert or replace the rows (keyed by server name and key id), in one transaction. */
  putServerKeys(rows: ServerKeyRow[]): Promise<void>;
  /** The stored keys of `serverName`, every key id when `keyIds` is absent. */
  getServerKeys(serverName: string, keyIds?: readonly string[]): Promise<ServerKeyRow[]>;
}
