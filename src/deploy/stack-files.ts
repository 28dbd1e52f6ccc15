/**
 * The files around the homeserver in the Compose stack: Caddy's config and the `.well-known/matrix` answers, Element
 * Web's config.json, coturn's turnserver.conf. Each names the hosts: the server name D, matrix.D and element.D.
 */
import { AmiError } from "../core/errors.ts";
import { PRIVATE_RANGES } from "../turn/config.ts";

export type Engine = "ami" | "synapse";

export const TURN_PORT = 3478;
export const TURN_MIN = 49160;
export const TURN_MAX = 49200;
export const HS_PORT = 8008;

const DOMAIN = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$|^localhost$/;

export function checkDomain(d: string, what = "domain"): void {
  if (!DOMAIN.test(d))
    throw new AmiError(
      "AMI_INVALID_INPUT",
      `--${what} '${d}' is not a DNS name such as example.org (no scheme, no port)`,
    );
}

export interface Hosts {
  domain: string;
  matrix: string;
  element: string;
}

export function hostsOf(o: { domain: string; matrixHost?: string; elementHost?: string }): Hosts {
  const h = {
    domain: o.domain,
    matrix: o.matrixHost ?? `matrix.${o.domain}`,
    element: o.elementHost ?? `element.${o.domain}`,
  };
  checkDomain(h.domain);
  checkDomain(h.matrix, "matrix-host");
  checkDomain(h.element, "element-host");
  return h;
}

export const turnUris = (h: Hosts): string[] => [
  `turn:${h.matrix}:${TURN_PORT}?transport=udp`,
  `turn:${h.matrix}:${TURN_PORT}?transport=tcp`,
];

export const hsService = (e: Engine): string => (e === "ami" ? "ami-streams" : "synapse");

/** `/.well-known/matrix/server` and `/client`: federation on matrix.D:443, clients to https://matrix.D. */
export function wellKnown(h: Hosts): { server: object; client: object } {
  return {
    server: { "m.server": `${h.matrix}:443` },
    client: { "m.homeserver": { base_url: `https://${h.matrix}` } },
  };
}

/** Element Web's config.json: our homeserver as the default, no third-party integrations, no phoning home. */
export function elementConfig(h: Hosts): object {
  return {
    default_server_config: {
      "m.homeserver": { base_url: `https://${h.matrix}`, server_name: h.domain },
    },
    disable_custom_urls: false,
    disable_guests: true,
    disable_3pid_login: true,
    brand: "Element",
    room_directory: { servers: [h.domain] },
    // Integration managers and analytics are third-party services: off unless the operator adds them.
    integrations_ui_url: "",
    integrations_rest_url: "",
    integrations_widgets_urls: [],
    show_labs_settings: false,
    setting_defaults: { "UIFeature.feedback": false, "UIFeature.registration": false },
    permalink_prefix: `https://${h.element}`,
  };
}

export function caddyfile(h: Hosts, engine: Engine, email: string | undefined): string {
  const hs = `${hsService(engine)}:${HS_PORT}`;
  return `# Caddy: TLS for every host (certificates from Let's Encrypt, automatic), the homeserver and Element Web
# behind it, and the /.well-known/matrix answers (also as files in caddy/srv/.well-known/matrix/ to copy to another
# web server if ${h.domain} is hosted elsewhere). Written by \`ami-streams deploy compose\`.
${email ? `{\n\temail ${email}\n}\n` : ""}
(matrix_well_known) {
\thandle /.well-known/matrix/* {
\t\troot * /srv
\t\theader Content-Type application/json
\t\theader Access-Control-Allow-Origin *
\t\tfile_server
\t}
}

${h.domain} {
\timport matrix_well_known
\thandle {
\t\tredir https://${h.element}{uri}
\t}
}

${h.matrix} {
\timport matrix_well_known
\t# Only the Matrix APIs are public; the admin API (/_synapse/admin) stays inside (docker compose exec).
\t# X-Forwarded-For is set to the connecting address, replacing whatever the client sent: the homeserver trusts
\t# it from the stack's network only (matrix.trustedProxies), so rate limits and last-seen IPs see the client.
\thandle /_matrix/* {
\t\treverse_proxy ${hs} {
\t\t\theader_up X-Forwarded-For {remote_host}
\t\t}
\t}
\thandle /_synapse/client/* {
\t\treverse_proxy ${hs} {
\t\t\theader_up X-Forwarded-For {remote_host}
\t\t}
\t}
\thandle {
\t\trespond "Not found" 404
\t}
}

${h.element} {
\treverse_proxy element:80
\theader {
\t\tX-Frame-Options SAMEORIGIN
\t\tX-Content-Type-Options nosniff
\t\tContent-Security-Policy "frame-ancestors 'self'"
\t}
}
`;
}

/** coturn: TURN REST credentials (the homeserver hands them out), no relaying into private ranges. */
export function turnserverConf(h: Hosts, secret: string, externalIp: string | undefined): string {
  return [
    "# coturn for the Compose stack, written by `ami-streams deploy compose` (0600: it holds the shared secret).",
    "# It runs with the host's network (relayed media needs the UDP port range); open 3478/udp+tcp and",
    `# ${TURN_MIN}-${TURN_MAX}/udp in the firewall.`,
    `listening-port=${TURN_PORT}`,
    `realm=${h.domain}`,
    "use-auth-secret",
    `static-auth-secret=${secret}`,
    externalIp
      ? `external-ip=${externalIp}`
      : "# Behind NAT: add an external-ip line with the public address (deploy compose --external-ip).",
    `min-port=${TURN_MIN}`,
    `max-port=${TURN_MAX}`,
    "fingerprint",
    "no-cli",
    "no-tls",
    "no-dtls",
    "no-multicast-peers",
    "no-software-attribute",
    ...PRIVATE_RANGES.map((r) => `denied-peer-ip=${r}`),
    // The container runs as the file owner: its pid file and (unused) user database go where it may write.
    "pidfile=/tmp/turnserver.pid",
    "userdb=/tmp/turndb",
    "log-file=stdout",
    "simple-log",
    "",
  ].join("\n");
}
