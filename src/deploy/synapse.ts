/**
 * Synapse's `homeserver.yaml` for the Compose stack (`deploy compose --engine synapse`): PostgreSQL (psycopg2) and
 * Redis configured, workers off (one main process), registration closed, the signing key next to it, every secret
 * random. Checked by our own validator (src/matrix/synapse-config.ts) before it is written.
 */
import YAML from "yaml";
import { formatSigningKeyFile, generateSigningKey } from "../matrix/events/signing.ts";

export interface SynapseSecrets {
  postgresPassword: string;
  redisPassword: string;
  turnSecret: string;
  registrationSharedSecret: string;
  macaroonSecretKey: string;
  formSecret: string;
}

export interface SynapseOptions {
  serverName: string;
  /** https://matrix.example.org/ */
  publicBaseUrl: string;
  turnUris: string[];
  federation: boolean;
  secrets: SynapseSecrets;
}

/** Where things live inside the container (the project's `synapse/` directory is mounted at /data). */
export const SYNAPSE_DATA = "/data";

export function synapseHomeserverYaml(o: SynapseOptions): string {
  const s = o.secrets;
  const config = {
    server_name: o.serverName,
    public_baseurl: o.publicBaseUrl,
    pid_file: `${SYNAPSE_DATA}/homeserver.pid`,
    report_stats: false,
    // One plain-HTTP listener behind Caddy, which terminates TLS and sets X-Forwarded-For.
    listeners: [
      {
        port: 8008,
        tls: false,
        type: "http",
        x_forwarded: true,
        bind_addresses: ["0.0.0.0"],
        resources: [{ names: o.federation ? ["client", "federation"] : ["client"], compress: false }],
      },
    ],
    database: {
      name: "psycopg2",
      args: {
        user: "synapse",
        password: s.postgresPassword,
        dbname: "synapse",
        host: "postgres",
        port: 5432,
        cp_min: 5,
        cp_max: 10,
      },
    },
    // Redis carries replication between workers; with workers off it is ready for when they are added.
    redis: { enabled: true, host: "redis", port: 6379, password: s.redisPassword },
    media_store_path: `${SYNAPSE_DATA}/media_store`,
    signing_key_path: `${SYNAPSE_DATA}/signing.key`,
    trusted_key_servers: o.federation ? [{ server_name: "matrix.org" }] : [],
    suppress_key_server_warning: true,
    federation_domain_whitelist: o.federation ? undefined : [],
    enable_registration: false,
    registration_shared_secret: s.registrationSharedSecret,
    macaroon_secret_key: s.macaroonSecretKey,
    form_secret: s.formSecret,
    turn_uris: o.turnUris,
    turn_shared_secret: s.turnSecret,
    turn_user_lifetime: "1h",
    turn_allow_guests: false,
    max_upload_size: "50M",
    url_preview_enabled: false,
    enable_metrics: false,
  };
  const body = YAML.stringify(JSON.parse(JSON.stringify(config)), { lineWidth: 0 });
  return (
    "# Synapse homeserver.yaml written by `ami-streams deploy compose --engine synapse`.\n" +
    "# Secrets are random and this file is private (0600). Check an edited copy with\n" +
    "#   ami-streams matrix config validate synapse/homeserver.yaml\n" +
    "# Reference: https://element-hq.github.io/synapse/latest/usage/configuration/config_documentation.html\n" +
    body
  );
}

/** A fresh Synapse `signing.key` ("ed25519 a_XXXX <seed>"), the format both servers read. */
export const synapseSigningKey = (): string => formatSigningKeyFile(generateSigningKey());
