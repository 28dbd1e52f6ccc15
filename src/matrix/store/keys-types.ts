/**
 * The end-to-end-encryption areas of the Store: KeyStore (spec: keys.yaml, cross_signing.yaml, to_device.yaml) and
 * KeyBackupStore (key_backup.yaml). Both backends implement them (sqlite/keys.ts, sqlite/key-backup.ts and the
 * postgres/ pair); conformance/keys.ts holds them to the same behaviour. Streamed rows (to-device messages, device-list changes) carry a stream position
 * allocated by the homeserver's StreamWriter, like every other streamed row.
 */

/** A one-time or fallback key as uploaded: `keyId` is "<algorithm>:<id>", `key` a string or a signed key object. */
export interface OneTimeKey {
  keyId: string;
  algorithm: string;
  key: unknown;
}

/** One claim: the next key of `algorithm` of one device. */
export interface KeyClaim {
  userId: string;
  deviceId: string;
  algorithm: string;
}

export interface ClaimedKey {
  userId: string;
  deviceId: string;
  keyId: string;
  key: unknown;
}

export type CrossSigningKeyType = "master" | "self_signing" | "user_signing";

export interface CrossSigningKeyRow {
  userId: string;
  type: CrossSigningKeyType;
  /** The CrossSigningKey object as uploaded (with the signatures it was uploaded with). */
  key: Record<string, any>;
}

/** A signature of a key by another key, uploaded through keys/signatures/upload. */
export interface KeySignatureRow {
  targetUserId: string;
  /** A device ID or the unpadded-base64 public key of a cross-signing key. */
  targetKeyId: string;
  signerUserId: string;
  /** e.g. "ed25519:<public key>" */
  signerKeyId: string;
  signature: string;
}

export interface ToDeviceMessage {
  /** Recipient user. */
  userId: string;
  /** Recipient device, or "*" for every device of the user. */
  deviceId: string;
  type: string;
  content: Record<string, any>;
}

export interface ToDeviceRow {
  stream: number;
  sender: string;
  type: string;
  content: Record<string, any>;
}

export interface BackupVersionRow {
  userId: string;
  version: string;
  algorithm: string;
  authData: Record<string, any>;
  /** Changes whenever the backup's keys change. */
  etag: string;
  count: number;
}

/** KeyBackupData (spec definitions/key_backup_data.yaml). */
export interface BackupKeyData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: Record<string, any>;
}

export interface BackupKeyRow {
  roomId: string;
  sessionId: string;
  data: BackupKeyData;
}

/** What a write to a backup's keys found: the version exists and is current, or not. */
export type BackupWriteResult =
  | { ok: true; etag: string; count: number }
  | { ok: false; reason: "not_found" }
  | { ok: false; reason: "wrong_version"; current: string | null };

/** One device of one user. */
export interface DeviceRef {
  userId: string;
  deviceId: string;
}

export interface KeyStore {
  // ---- device keys ----------------------------------------------------------------
  /** Insert or replace the DeviceKeys object of a device. */
  setDeviceKeys(userId: string, deviceId: string, keys: Record<string, any>): Promise<void>;
  /** DeviceKeys of every device of these users that has keys (and still exists), ordered by user, device. */
  getDeviceKeys(userIds: string[]): Promise<{ userId: string; deviceId: string; keys: Record<string, any> }[]>;

  // ---- one-time and fallback keys ---------------------------------------------------
  /**
   * Add one-time keys, all or nothing. A key ID that exists with the same key is skipped; one that exists
   * with a different key throws M_INVALID_PARAM (a key is never replaced silently).
   */
  addOneTimeKeys(userId: string, deviceId: string, keys: OneTimeKey[]): Promise<void>;
  /** Unclaimed one-time keys of the device, per algorithm. */
  countOneTimeKeys(userId: string, deviceId: string): Promise<Record<string, number>>;
  /** Replace the device's fallback key per algorithm (unused again); re-uploading the same key keeps its used flag. */
  setFallbackKeys(userId: string, deviceId: string, keys: OneTimeKey[]): Promise<void>;
  /** Algorithms of the device's fallback keys that have not been handed out. */
  unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]>;
  /** countOneTimeKeys of each device, in the order given (one query: many connections' frames together). */
  countOneTimeKeysMany(devices: DeviceRef[]): Promise<Record<string, number>[]>;
  /** unusedFallbackKeyTypes of each device, in the order given. */
  unusedFallbackKeyTypesMany(devices: DeviceRef[]): Promise<string[][]>;
  /**
   * One atomic operation: for each claim, remove and return one one-time key of that algorithm, or when
   * none is left return the device's fallback key (marking it used). Claims with neither are absent from the
   * result. Concurrent calls never return the same one-time key.
   */
  claimKeys(claims: KeyClaim[]): Promise<ClaimedKey[]>;

  // ---- cross-signing ---------------------------------------------------------------
  /** Set the given cross-signing keys of a user (one transaction). */
  setCrossSigningKeys(userId: string, keys: Partial<Record<CrossSigningKeyType, Record<string, any>>>): Promise<void>;
  getCrossSigningKeys(userIds: string[]): Promise<CrossSigningKeyRow[]>;
  /** Upsert signatures by (target user, target key, signer user, signer key). */
  addKeySignatures(rows: KeySignatureRow[]): Promise<void>;
  /** Every stored signature of keys of these users. */
  getKeySignatures(targetUserIds: string[]): Promise<KeySignatureRow[]>;

  // ---- device lists ------------------------------------------------------------------
  /** Record that these users' device lists changed at `stream`. */
  markDeviceListsChanged(userIds: string[], stream: number): Promise<void>;
  /** Users whose device list last changed with stream in (after, upto]. */
  getDeviceListChanges(after: number, upto: number): Promise<string[]>;
  /** Delete a device's keys, one-time and fallback keys, signatures of it and its to-device inbox. */
  deleteDeviceKeys(userId: string, deviceId: string): Promise<void>;

  // ---- to-device ---------------------------------------------------------------------
  /**
   * Queue messages at `stream` for existing devices only ("*" = every device of the user), recording the
   * sender's (device, txnId) in the same transaction. Returns false, queueing nothing, if that txnId was used.
   */
  addToDeviceMessages(
    sender: { userId: string; deviceId: string; txnId: string },
    messages: ToDeviceMessage[],
    stream: number,
  ): Promise<boolean>;
  /** Drop the device's messages with stream <= `ackedUpto` (the client has them), then return those <= `upto`. */
  takeToDeviceMessages(userId: string, deviceId: string, ackedUpto: number, upto: number): Promise<ToDeviceRow[]>;

  /** Greatest stream position of the tables above (0 when empty). */
  getMaxKeyStream(): Promise<number>;
}

/** Server-side key backup (spec key_backup.yaml): versions per user and the room keys in them. */
export interface KeyBackupStore {
  /** A new backup version (greater than every earlier one of the user); returns the version. */
  createBackupVersion(userId: string, algorithm: string, authData: Record<string, any>): Promise<string>;
  /** A version of the user's backup (deleted ones are absent), or the latest when `version` is null. */
  getBackupVersion(userId: string, version: string | null): Promise<BackupVersionRow | null>;
  /** False if the version does not exist. */
  updateBackupVersion(userId: string, version: string, authData: Record<string, any>): Promise<boolean>;
  /** Delete a version and its keys; false if it did not exist. */
  deleteBackupVersion(userId: string, version: string): Promise<boolean>;
  /**
   * Store keys in `version`, which must be the current (latest) one; an existing key is replaced only by a
   * better one (verified, then lower first_message_index, then lower forwarded_count).
   */
  putBackupKeys(userId: string, version: string, keys: BackupKeyRow[]): Promise<BackupWriteResult>;
  /** Keys of a version, optionally of one room or one session. */
  getBackupKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<BackupKeyRow[]>;
  deleteBackupKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<BackupWriteResult>;
}

/** The rule of spec "Server-side key backups": is `b` better than the stored `a`? */
export function isBetterBackupKey(a: BackupKeyData, b: BackupKeyData): boolean {
  if (a.is_verified !== b.is_verified) return b.is_verified;
  if (a.first_message_index !== b.first_message_index) return b.first_message_index < a.first_message_index;
  return b.forwarded_count < a.forwarded_count;
}
