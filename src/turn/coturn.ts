/** How coturn is run: its command line from the `turn` section (the secret goes in a 0600 file, not argv). */
import type { Config } from "../config.ts";
import { homeFor } from "../core/config.ts";
import { urlHost } from "../core/http/address.ts";
import { runtimePaths } from "../core/paths.ts";
import { sharedSecret, writeSecretConf } from "./credentials.ts";

export const turnDir = (c: Config): string => runtimePaths(homeFor(c)).serviceData("turn");

/** host:port as URIs and coturn want it ([v6]:port). */
export const hostPort = (h: string, p: number): string => `${urlHost(h)}:${p}`;

/** The URIs clients get: the configured ones, else turn:<host>:<port> over UDP and TCP. */
export function turnUris(c: Config): string[] {
  if (c.turn.uris.length > 0) return c.turn.uris;
  const at = hostPort(c.turn.externalIp ?? c.turn.host, c.turn.port);
  return [`turn:${at}?transport=udp`, `turn:${at}?transport=tcp`];
}

export const turnSecret = (c: Config): string => sharedSecret(c.turn.sharedSecret, turnDir(c));

/** The supervisor asks for the spec at every health check: argv (and the secret file it writes) once per config. */
const argvOf = new WeakMap<Config, string[]>();

export function turnArgv(c: Config): string[] {
  let argv = argvOf.get(c);
  if (!argv) {
    argv = buildArgv(c, turnDir(c));
    argvOf.set(c, argv);
  }
  return argv;
}

function buildArgv(c: Config, dir: string): string[] {
  const t = c.turn;
  const conf = writeSecretConf(dir, turnSecret(c));
  return [
    t.binary,
    "-c",
    conf,
    "--listening-ip",
    t.host,
    "--listening-port",
    String(t.port),
    ...(t.externalIp ? ["--external-ip", t.externalIp] : []),
    "--realm",
    t.realm ?? c.matrix.serverName,
    "--use-auth-secret",
    "--min-port",
    String(t.minPort),
    "--max-port",
    String(t.maxPort),
    ...t.deniedPeerIps.flatMap((r) => ["--denied-peer-ip", r]),
    ...t.allowedPeerIps.flatMap((r) => ["--allowed-peer-ip", r]),
    ...(t.allowLoopbackPeers ? ["--allow-loopback-peers"] : []),
    "--no-multicast-peers",
    // No TLS/DTLS listeners without certificates, no telnet CLI, no coturn database, logs to our capture.
    "--no-tls",
    "--no-dtls",
    "--no-cli",
    "--fingerprint",
    "--no-software-attribute",
    "--userdb",
    `${dir}/turndb`,
    "--pidfile",
    `${dir}/turnserver.pid`,
    "--log-file",
    "stdout",
    "--simple-log",
  ];
}
