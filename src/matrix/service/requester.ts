/** Who is making a request: set by the edge from the access token, read by every service that checks permissions. */
export interface Requester {
  userId: string;
  deviceId: string;
  isAdmin: boolean;
  /** Shadow-banned by an admin: sends are answered with an invented event ID and dropped (as Synapse). */
  shadowBanned?: boolean;
  /** sha256 hex of the access token in use (logout deletes it). */
  tokenHash: string;
}
