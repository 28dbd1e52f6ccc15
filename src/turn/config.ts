/** The `turn` section: coturn (Debian's `turnserver`) supervised as a program, for VoIP and WebRTC behind NAT. */
import { z } from "zod";
import { hostSchema as host, portSchema as port } from "../core/config.ts";

/** Private, loopback, link-local, CGNAT and multicast ranges: a TURN server must not relay into the operator's LAN. */
export const PRIVATE_RANGES = [
  "0.0.0.0-0.255.255.255",
  "10.0.0.0-10.255.255.255",
  "100.64.0.0-100.127.255.255",
  "127.0.0.0-127.255.255.255",
  "169.254.0.0-169.254.255.255",
  "172.16.0.0-172.31.255.255",
  "192.0.0.0-192.0.0.255",
  "192.168.0.0-192.168.255.255",
  "198.18.0.0-198.19.255.255",
  "224.0.0.0-255.255.255.255",
  "::1",
  "64:ff9b::-64:ff9b::ffff:ffff",
  "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
  "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

export const turnSchema = z
  .object({
    /** Off by default: a relay is only worth running where clients sit behind NAT. */
    enabled: z.boolean().default(false),
    /** The coturn binary. */
    binary: z.string().min(1).default("turnserver"),
    /** Address coturn listens on (TCP and UDP). */
    host: host.default("127.0.0.1"),
    port: port.default(3478),
    /** The public address of this machine when it is behind NAT (coturn's external-ip); null: none. */
    externalIp: z.string().min(1).nullable().default(null),
    /** URIs handed to clients; []: turn:<host>:<port> over UDP and TCP. */
    uris: z.array(z.string().regex(/^turns?:/, "must be a turn: or turns: URI")).default([]),
    /** The TURN realm; null: matrix.serverName. */
    realm: z.string().min(1).nullable().default(null),
    /** Shared secret of the TURN REST scheme (use-auth-secret); null: generated into <home>/data/turn/. */
    sharedSecret: z.string().min(16).nullable().default(null),
    /** How long handed-out credentials stay valid. */
    credentialTtlSeconds: z.number().int().positive().default(86400),
    /** UDP ports for relayed traffic. */
    minPort: port.default(49160),
    maxPort: port.default(49200),
    /** Peer addresses coturn refuses to relay to (ranges "a-b" or single addresses); default: private ranges. */
    deniedPeerIps: z.array(z.string().min(1)).default(PRIVATE_RANGES),
    /** Exceptions to deniedPeerIps (e.g. a LAN whose clients should reach each other through the relay). */
    allowedPeerIps: z.array(z.string().min(1)).default([]),
    /** Relay to 127.0.0.0/8 and ::1 too (tests on one machine; never on a public server). */
    allowLoopbackPeers: z.boolean().default(false),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.maxPort < t.minPort) ctx.addIssue({ code: "custom", path: ["maxPort"], message: "must be at least minPort" });
  });

export type TurnConfig = z.output<typeof turnSchema>;
