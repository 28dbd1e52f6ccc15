/**
 * The production Compose project (`ami-streams deploy compose`): the homeserver (ours, built from the repo's
 * Dockerfile, or Synapse), PostgreSQL, Redis, coturn, Element Web and Caddy (TLS, the `.well-known/matrix` answers).
 *
 * Hosts: the server name D (user IDs @alice:D; D serves only the well-known files), matrix.D (the homeserver, also
 * for federation on 443 through the `m.server` delegation) and element.D (the web client).
 * Secrets: random, in `.env` (read by Compose for PostgreSQL, Redis) and in the 0600 files of the containers that
 * need them; those containers run as the files' owner (`user:`), never as root.
 */
import YAML, { Scalar } from "yaml";
import { validateConfig } from "../config.ts";
import { AmiError } from "../core/errors.ts";
import { validateSynapseConfig } from "../matrix/synapse-config.ts";
import { newSecret, type Project, type ProjectFile } from "./project.ts";
import {
  caddyfile,
  type Engine,
  elementConfig,
  type Hosts,
  HS_PORT,
  hostsOf,
  hsService,
  TURN_MAX,
  TURN_MIN,
  TURN_PORT,
  turnserverConf,
  turnUris,
  wellKnown,
} from "./stack-files.ts";

import { type SynapseSecrets, synapseHomeserverYaml, synapseSigningKey } from "./synapse.ts";

export type { Engine };

export interface ComposeOptions {
  domain: string;
  engine: Engine;
  /** Default matrix.<domain>. */
  matrixHost?: string;
  /** Default element.<domain>. */
  elementHost?: string;
  /** ACME account e-mail for Caddy (optional: Let's Encrypt works without). */
  email?: string;
  /** coturn's public address when the host is behind NAT. */
  externalIp?: string;
  federation: boolean;
  /** Our image: built from `repo` (default), or this prebuilt tag. */
  image?: string;
  repo: string;
  version: string;
  uid: number;
  gid: number;
}

/** Image tags: majors pinned where upstream keeps majors stable; the Matrix apps follow their releases. */
export const IMAGES = {
  postgres: "postgres:16-alpine",
  redis: "redis:7-alpine",
  caddy: "caddy:2-alpine",
  coturn: "coturn/coturn:4.6",
  element: "vectorim/element-web:latest",
  synapse: "matrixdotorg/synapse:latest",
} as const;

/** The stack's Compose network (fixed: the homeserver's matrix.trustedProxies names it). */
export const STACK_SUBNET = "172.29.13.0/24";

/** Our config.yaml inside the container: the homeserver on PostgreSQL, behind Caddy. */
export function amiConfigYaml(
  h: Hosts,
  s: { postgresPassword: string; turnSecret: string; sharedSecret: string; redisPassword: string },
  federation: boolean,
): string {
  const config = {
    log: { level: "info" },
    matrix: {
      serverName: h.domain,
      host: "0.0.0.0",
      port: HS_PORT,
      publicBaseUrl: `https://${h.matrix}`,
      database: `postgres://ami:${s.postgresPassword}@postgres:5432/ami_streams`,
      // The stack's Redis, used once `workers` is raised above 1 (docs/ARCHITECTURE.md "Homeserver scale-out").
      redis: `redis://:${s.redisPassword}@redis:6379`,
      registration: { enabled: false, requireToken: false, sharedSecret: s.sharedSecret },
      // Every connection arrives from Caddy's address; its X-Forwarded-For (from the stack's own network only)
      // names the client, for rate limits and last-seen IPs.
      limits: { maxConnectionsPerAddress: 10000 },
      trustedProxies: [STACK_SUBNET],
      voip: { turnUris: turnUris(h), turnSharedSecret: s.turnSecret, turnUserLifetimeSeconds: 3600 },
      federation: { enabled: federation, wellKnownServer: `${h.matrix}:443` },
    },
    // Element Web is the client here; live media is not part of this stack.
    web: { enabled: false },
    media: { enabled: false },
  };
  const { issues } = validateConfig(config);
  if (issues.length > 0)
    throw new AmiError("AMI_INTERNAL", `generated config is invalid: ${issues.map((i) => i.message).join("; ")}`);
  return (
    "# ami-streams config for the Compose stack (mounted at /config/config.yaml; the runtime home is the\n" +
    "# ami/data directory, mounted at /data). Written by `ami-streams deploy compose`; 0600: it holds secrets.\n" +
    "# Check an edited copy with: ami-streams config validate ami/config.yaml\n" +
    YAML.stringify(config, { lineWidth: 0 })
  );
}

const healthy = () => ({ condition: "service_healthy" }) as const;

/** A Compose variable from .env; Compose stops with this message when it is missing. */
const fromEnvFile = (name: string): string => `\${${name}:?set in .env}`;

/** Quoted: Compose reads YAML 1.1, where an unquoted 22:22 is a base-60 number. */
const quoted = (s: string): Scalar => Object.assign(new Scalar(s), { type: Scalar.QUOTE_DOUBLE });

function composeYaml(h: Hosts, o: ComposeOptions): string {
  const user = quoted(`${o.uid}:${o.gid}`);
  const isAmi = o.engine === "ami";
  const db = isAmi ? { user: "ami", name: "ami_streams" } : { user: "synapse", name: "synapse" };
  const homeserver = isAmi
    ? {
        image: o.image ?? `ami-streams:${o.version}`,
        ...(o.image ? {} : { build: { context: o.repo, dockerfile: "Dockerfile" } }),
        restart: "unless-stopped",
        // The config is 0600, owned by the user who generated the project: the process runs as that user.
        user,
        environment: { AMI_STREAMS_CONFIG: "/config/config.yaml", AMI_STREAMS_HOME: "/data" },
        volumes: ["./ami/config.yaml:/config/config.yaml:ro", "./ami/data:/data"],
        depends_on: { postgres: healthy(), redis: healthy() },
        expose: [String(HS_PORT)],
      }
    : {
        image: IMAGES.synapse,
        restart: "unless-stopped",
        // The image's start.py drops to UID:GID, the owner of the 0600 homeserver.yaml and signing key.
        environment: {
          SYNAPSE_CONFIG_PATH: "/data/homeserver.yaml",
          UID: String(o.uid),
          GID: String(o.gid),
        },
        volumes: ["./synapse:/data"],
        depends_on: { postgres: healthy(), redis: healthy() },
        expose: [String(HS_PORT)],
        healthcheck: {
          test: ["CMD", "curl", "-fsS", `http://localhost:${HS_PORT}/health`],
          interval: "15s",
          timeout: "5s",
          retries: 3,
          start_period: "30s",
        },
      };
  const compose = {
    services: {
      [hsService(o.engine)]: homeserver,
      postgres: {
        image: IMAGES.postgres,
        restart: "unless-stopped",
        environment: {
          POSTGRES_USER: db.user,
          POSTGRES_DB: db.name,
          POSTGRES_PASSWORD: fromEnvFile("POSTGRES_PASSWORD"),
          // Synapse requires the C collation; it does no harm to ours.
          POSTGRES_INITDB_ARGS: "--encoding=UTF8 --lc-collate=C --lc-ctype=C",
        },
        volumes: ["postgres-data:/var/lib/postgresql/data"],
        healthcheck: {
          test: ["CMD", "pg_isready", "-U", db.user, "-d", db.name],
          interval: "10s",
          timeout: "5s",
          retries: 5,
        },
      },
      redis: {
        image: IMAGES.redis,
        restart: "unless-stopped",
        environment: { REDIS_PASSWORD: fromEnvFile("REDIS_PASSWORD") },
        // A message bus, not a store: no persistence. The password comes from the environment, not the Compose file.
        command: ["sh", "-c", 'exec redis-server --save "" --appendonly no --requirepass "$$REDIS_PASSWORD"'],
        healthcheck: {
          test: ["CMD-SHELL", 'REDISCLI_AUTH="$$REDIS_PASSWORD" redis-cli ping | grep -q PONG'],
          interval: "10s",
          timeout: "5s",
          retries: 5,
        },
      },
      coturn: {
        image: IMAGES.coturn,
        restart: "unless-stopped",
        // Relayed media needs the whole UDP port range on the host's addresses.
        network_mode: "host",
        user,
        command: ["-c", "/etc/coturn/turnserver.conf"],
        volumes: ["./coturn/turnserver.conf:/etc/coturn/turnserver.conf:ro"],
      },
      element: {
        image: IMAGES.element,
        restart: "unless-stopped",
        environment: { ELEMENT_WEB_PORT: "80" },
        volumes: ["./element/config.json:/app/config.json:ro"],
        expose: ["80"],
      },
      caddy: {
        image: IMAGES.caddy,
        restart: "unless-stopped",
        ports: ["80:80", "443:443", "443:443/udp"].map(quoted),
        volumes: [
          "./caddy/Caddyfile:/etc/caddy/Caddyfile:ro",
          "./caddy/srv:/srv:ro",
          "caddy-data:/data",
          "caddy-config:/config",
        ],
        depends_on: [hsService(o.engine), "element"],
      },
    },
    volumes: { "postgres-data": {}, "caddy-data": {}, "caddy-config": {} },
    // A fixed subnet, so the homeserver can trust X-Forwarded-For from it (Caddy) and from nowhere else.
    networks: { default: { ipam: { config: [{ subnet: STACK_SUBNET }] } } },
  };
  return (
    `# Production stack for ${h.domain}, written by \`ami-streams deploy compose --engine ${o.engine}\`.\n` +
    "# Start it on a host with Docker: docker compose up -d" +
    (isAmi && !o.image ? " --build" : "") +
    "   (secrets: .env and the 0600 files; see README.md)\n" +
    YAML.stringify(compose, { lineWidth: 0, aliasDuplicateObjects: false })
  );
}

function readme(h: Hosts, o: ComposeOptions): string {
  const hs = hsService(o.engine);
  const register =
    o.engine === "ami"
      ? `docker compose exec ${hs} bin/ami-streams matrix user create alice --password '...' --admin`
      : `docker compose exec ${hs} register_new_matrix_user -c /data/homeserver.yaml http://localhost:${HS_PORT}`;
  return `# Matrix stack for ${h.domain}

Written by \`ami-streams deploy compose --engine ${o.engine}\`.

| service | what | reached at |
|---|---|---|
| ${hs} | the homeserver (${o.engine === "ami" ? "ami-streams, image built from the repo's Dockerfile" : "Synapse, workers off"}) | https://${h.matrix} (through Caddy) |
| postgres | its database | inside the Compose network only |
| redis | message bus (${o.engine === "ami" ? "provisioned for homeserver scale-out; not used by one process" : "Synapse replication"}) | inside only |
| coturn | TURN relay for calls | ${h.matrix}:${TURN_PORT} udp/tcp, ${TURN_MIN}-${TURN_MAX}/udp (host network) |
| element | Element Web, pointed at the homeserver | https://${h.element} |
| caddy | TLS (Let's Encrypt) and /.well-known/matrix | 80, 443 |

## Run

1. DNS: A/AAAA records for ${h.domain}, ${h.matrix} and ${h.element} pointing at this host.
2. Firewall: 80/tcp, 443/tcp+udp, ${TURN_PORT}/tcp+udp, ${TURN_MIN}-${TURN_MAX}/udp.
3. \`docker compose up -d${o.engine === "ami" && !o.image ? " --build" : ""}\` in this directory, then \`docker compose ps\`.${
    o.engine === "ami" && !o.image
      ? `\n   The image is built from ${o.repo} (its Dockerfile); on another host, build and push it, then generate with --image.`
      : ""
  }
4. First user: \`${register}\`.

Registration is closed. Federation is ${o.federation ? `on (delegated to ${h.matrix}:443 by /.well-known/matrix/server)` : "off"}.
If ${h.domain} is served by another web server, copy \`caddy/srv/.well-known/matrix/{server,client}\` there
(Content-Type: application/json, Access-Control-Allow-Origin: *) and drop the ${h.domain} block from the Caddyfile.

## Secrets

All generated at random. \`.env\` (the PostgreSQL and Redis passwords, read by Compose) and the homeserver's and
coturn's config files are 0600, owned by uid ${o.uid}; those containers run as ${o.uid}:${o.gid}. Keep backups of
\`${o.engine === "ami" ? "ami/data" : "synapse/signing.key"}\` (the server's signing key) and the postgres-data volume.
`;
}

/** Every file of the project, secrets generated, the homeserver config checked by our own validators. */
export function composeProject(o: ComposeOptions): Project {
  const h = hostsOf(o);
  const secrets: SynapseSecrets = {
    postgresPassword: newSecret(),
    redisPassword: newSecret(),
    turnSecret: newSecret(),
    registrationSharedSecret: newSecret(),
    macaroonSecretKey: newSecret(),
    formSecret: newSecret(),
  };
  const wk = wellKnown(h);
  const json = (v: object) => `${JSON.stringify(v, null, 2)}\n`;
  const files: ProjectFile[] = [
    { path: "compose.yaml", content: composeYaml(h, o), mode: 0o644 },
    {
      path: ".env",
      mode: 0o600,
      content:
        "# Read by docker compose (secrets for PostgreSQL and Redis). Written by `ami-streams deploy compose`.\n" +
        `COMPOSE_PROJECT_NAME=${`matrix-${h.domain}`.replace(/[^a-z0-9-]/gi, "-").toLowerCase()}\n` +
        `POSTGRES_PASSWORD=${secrets.postgresPassword}\n` +
        `REDIS_PASSWORD=${secrets.redisPassword}\n`,
    },
    { path: "README.md", content: readme(h, o), mode: 0o644 },
    { path: "caddy/Caddyfile", content: caddyfile(h, o.engine, o.email), mode: 0o644 },
    { path: "caddy/srv/.well-known/matrix/server", content: json(wk.server), mode: 0o644 },
    { path: "caddy/srv/.well-known/matrix/client", content: json(wk.client), mode: 0o644 },
    { path: "element/config.json", content: json(elementConfig(h)), mode: 0o644 },
    { path: "coturn/turnserver.conf", content: turnserverConf(h, secrets.turnSecret, o.externalIp), mode: 0o600 },
  ];
  const dirs: string[] = [];
  if (o.engine === "ami") {
    files.push({
      path: "ami/config.yaml",
      mode: 0o600,
      content: amiConfigYaml(
        h,
        {
          postgresPassword: secrets.postgresPassword,
          turnSecret: secrets.turnSecret,
          sharedSecret: secrets.registrationSharedSecret,
          redisPassword: secrets.redisPassword,
        },
        o.federation,
      ),
    });
    dirs.push("ami/data");
  } else {
    const yaml = synapseHomeserverYaml({
      serverName: h.domain,
      publicBaseUrl: `https://${h.matrix}/`,
      turnUris: turnUris(h),
      federation: o.federation,
      secrets,
    });
    const issues = validateSynapseConfig(YAML.parse(yaml, { version: "1.1" }));
    if (issues.length > 0)
      throw new AmiError(
        "AMI_INTERNAL",
        `generated homeserver.yaml is invalid: ${issues.map((i) => `${i.key}: ${i.message}`).join("; ")}`,
      );
    dirs.push("synapse");
    files.push({ path: "synapse/homeserver.yaml", content: yaml, mode: 0o600 });
    files.push({ path: "synapse/signing.key", content: synapseSigningKey(), mode: 0o600 });
  }
  return { files, dirs };
}
