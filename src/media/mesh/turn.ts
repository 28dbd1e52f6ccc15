/**
 * Our TURN for the viewer mesh: with the `turn` feature on (and `media.mesh.turn`), each viewer's `welcome` carries
 * the TURN URIs with credentials of its own, short-lived, in coturn's REST scheme. Only the HMAC of the shared secret
 * goes to the browser, never the secret; a leaked credential names one viewer and expires within turnTtlSeconds.
 */
import type { Config } from "../../config.ts";
import { turnSecret, turnUris } from "../../turn/coturn.ts";
import { turnCredentials } from "../../turn/credentials.ts";

export interface MeshTurn {
  secret: string;
  uris: string[];
  ttlSeconds: number;
}

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** What the mesh needs of the `turn` feature (undefined: turn off, or media.mesh.turn false). */
export function meshTurn(c: Config): MeshTurn | undefined {
  if (!c.turn.enabled || !c.media.mesh.enabled || !c.media.mesh.turn) return undefined;
  return { secret: turnSecret(c), uris: turnUris(c), ttlSeconds: c.media.mesh.turnTtlSeconds };
}

/** The ICE servers for one viewer: the configured ones, then ours with credentials bound to its mesh id. */
export function viewerIce(configured: IceServer[], turn: MeshTurn | undefined, id: string, now = Date.now()) {
  if (!turn) return configured;
  const c = turnCredentials(turn.secret, `mesh-${id}`, turn.ttlSeconds, turn.uris, now);
  return [...configured, { urls: c.uris, username: c.username, credential: c.password }];
}
