/**
 * TURN credentials in coturn's REST scheme (use-auth-secret): the username is `<expiry unix time>:<user>`, the
 * password base64(HMAC-SHA1(secret, username)). coturn checks both without a database; Synapse hands out the same.
 */
import { createHmac } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadOrCreateSecret } from "../core/secret.ts";

export interface TurnCredentials {
  username: string;
  password: string;
  uris: string[];
  ttl: number;
}

export function turnCredentials(
  secret: string,
  user: string,
  ttlSeconds: number,
  uris: string[],
  now = Date.now(),
): TurnCredentials {
  const username = `${Math.floor(now / 1000) + ttlSeconds}:${user}`;
  const password = createHmac("sha1", secret).update(username).digest("base64");
  return { username, password, uris, ttl: ttlSeconds };
}

/** The secret from the config, else the one generated into `dir` on first use. */
export const sharedSecret = (configured: string | null, dir: string): string =>
  configured ?? loadOrCreateSecret(join(dir, "shared_secret"));

/** coturn's config file, holding what must not appear on a command line (/proc/<pid>/cmdline is world-readable). */
export function writeSecretConf(dir: string, secret: string): string {
  const file = join(dir, "turnserver.conf");
  const text = `# Written by ami-streams: the shared secret of the TURN REST scheme.\nstatic-auth-secret=${secret}\n`;
  let current = "";
  try {
    current = readFileSync(file, "utf8");
  } catch {}
  if (current !== text) writeFileSync(file, text, { mode: 0o600 });
  return file;
}
