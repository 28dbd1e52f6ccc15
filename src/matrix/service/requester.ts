/** Who is making a request: set by the edge from the access token, read by every service that checks permissions. */
export interface Requester {
  userId: string;
  deviceId: string;
  isAdmin: boolean;
  /** Shadow-banned by an admin: sends are answered with an invented event ID and dropped (as Synapse). */
  shadowBanned?: boolean;
  /** sha256 hex of the access token in use (logout deletes it). */
  tokenHash: string;
  /** The account is locked (spec "Account locking"): the edge answers 401 M_USER_LOCKED except on logout. */
  locked?: boolean;
  /** The account is suspended (spec "Account suspension"): reads work, writes answer 403 M_USER_SUSPENDED. */
  suspended?: boolean;
  /** When the access token expires (ms); absent: never (tokens issued without a refresh token). */
  expiresTs?: number;
}
