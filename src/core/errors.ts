/**
 * One error class for the whole project. Every error carries a stable code (Matrix `M_*` where the
 * spec defines one, `AMI_*` otherwise) and is turned into an HTTP status or exit code only at the edge.
 */
export const ErrorCodes = {
  // Matrix-defined
  M_FORBIDDEN: 403,
  M_UNKNOWN_TOKEN: 401,
  M_MISSING_TOKEN: 401,
  M_USER_LOCKED: 401,
  M_BAD_JSON: 400,
  M_NOT_JSON: 400,
  M_NOT_FOUND: 404,
  M_LIMIT_EXCEEDED: 429,
  M_UNRECOGNIZED: 404,
  M_UNKNOWN: 500,
  M_UNAUTHORIZED: 401,
  M_USER_DEACTIVATED: 403,
  M_USER_IN_USE: 400,
  M_INVALID_USERNAME: 400,
  M_ROOM_IN_USE: 400,
  M_INVALID_ROOM_STATE: 400,
  M_THREEPID_IN_USE: 400,
  M_SERVER_NOT_TRUSTED: 401,
  M_UNSUPPORTED_ROOM_VERSION: 400,
  M_INCOMPATIBLE_ROOM_VERSION: 400,
  M_BAD_STATE: 403,
  M_GUEST_ACCESS_FORBIDDEN: 403,
  M_MISSING_PARAM: 400,
  M_INVALID_PARAM: 400,
  M_TOO_LARGE: 413,
  M_EXCLUSIVE: 400,
  M_RESOURCE_LIMIT_EXCEEDED: 403,
  M_CANNOT_LEAVE_SERVER_NOTICE_ROOM: 403,
  M_WEAK_PASSWORD: 400,
  M_UNABLE_TO_AUTHORISE_JOIN: 400,
  M_UNABLE_TO_GRANT_JOIN: 400,
  M_NOT_YET_UPLOADED: 504,
  M_CANNOT_OVERWRITE_MEDIA: 409,
  M_USER_SUSPENDED: 403,
  M_BAD_ALIAS: 400,
  M_WRONG_ROOM_KEYS_VERSION: 403,
  M_INVALID_SIGNATURE: 403,
  M_UNSUPPORTED_ROOM_VERSION_FEDERATION: 400,
  M_DUPLICATE_ANNOTATION: 400,
  M_PROFILE_TOO_LARGE: 400,
  M_KEY_TOO_LARGE: 400,
  M_THREEPID_AUTH_FAILED: 400,
  M_THREEPID_DENIED: 403,
  M_THREEPID_MEDIUM_NOT_SUPPORTED: 400,
  M_THREEPID_NOT_FOUND: 400,
  // project-defined
  AMI_INVALID_CONFIG: 400,
  AMI_INVALID_INPUT: 400,
  AMI_NOT_RUNNING: 503,
  AMI_NOT_BUILT: 501,
  AMI_UNAVAILABLE: 503,
  AMI_TIMEOUT: 504,
  AMI_INTERNAL: 500,
} as const;

/**
 * A feature's own codes join the type by augmentation, next to the manifest that registers their statuses:
 * `declare module "../core/errors.ts" { interface FeatureErrorCodes extends MyCodes {} }`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by features' module augmentation
export interface FeatureErrorCodes {}

export type ErrorCode = keyof typeof ErrorCodes | keyof FeatureErrorCodes;

const featureStatuses = new Map<string, number>();

/** Called by defineFeature with the manifest's `errors`. */
export function registerErrorCodes(codes: Readonly<Record<string, number>>): void {
  for (const [code, status] of Object.entries(codes)) {
    if (code in ErrorCodes || (featureStatuses.has(code) && featureStatuses.get(code) !== status))
      throw new Error(`error code ${code} is defined twice`);
    featureStatuses.set(code, status);
  }
}

/** The HTTP status of a code (a feature's code not registered yet: 500). */
export const statusOf = (code: ErrorCode): number =>
  (ErrorCodes as Record<string, number>)[code] ?? featureStatuses.get(code) ?? 500;

export class AmiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra fields merged into the JSON error body (e.g. `retry_after_ms`). */
  readonly extra: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, extra: Record<string, unknown> = {}, status?: number) {
    super(message);
    this.name = "AmiError";
    this.code = code;
    this.status = status ?? statusOf(code);
    this.extra = extra;
  }

  /** The Matrix error JSON body: `{ errcode, error, ...extra }`. */
  toJSON(): Record<string, unknown> {
    return { errcode: this.code, error: this.message, ...this.extra };
  }
}

export const isAmiError = (e: unknown): e is AmiError => e instanceof AmiError;

/** SQLITE_FULL (13; extended codes keep it in the low byte). */
const SQLITE_FULL = 13;

/** A write that failed because the disk (or the user's quota) is full: ENOSPC/EDQUOT, or SQLite's SQLITE_FULL. */
export function isDiskFull(e: unknown): boolean {
  const x = e as { code?: unknown; errcode?: unknown } | null;
  if (x?.code === "ENOSPC" || x?.code === "EDQUOT") return true;
  return typeof x?.errcode === "number" && (x.errcode & 0xff) === SQLITE_FULL;
}

/**
 * Anything thrown that is not an AmiError becomes an opaque internal error: no stack reaches a client. A full disk
 * is the exception: it is the server's resource limit, temporary, and the client should hear so (507 Insufficient
 * Storage, not 500: nothing is broken, the write can be retried once an operator frees space).
 */
export function toAmiError(e: unknown): AmiError {
  if (e instanceof AmiError) return e;
  if (isDiskFull(e)) {
    return new AmiError("M_RESOURCE_LIMIT_EXCEEDED", "The server's disk is full; try again later", {}, 507);
  }
  return new AmiError("M_UNKNOWN", "Internal server error");
}
