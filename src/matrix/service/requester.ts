/** Who is making a request: set by the edge from the access token, read by every service that checks permissions. */
export interface Requester {
  userId: string;
  deviceId: string;
  isAdmin: boolean;
  /** sha256 hex of the access token in use (logout deletes it). */
  tokenHash: string;
  /** When the access token expires (ms); absent: never (tokens issued without a refresh token). */
  expiresTs?: number;
}
