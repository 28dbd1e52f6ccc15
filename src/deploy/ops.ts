/** `ami-streams deploy compose|systemd` (MCP: deploy_compose, deploy_systemd): write a deployable project. */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { join, resolve } from "node:path";
import { z } from "zod";
import { repoRoot } from "../control/bin-path.ts";
import { AmiError } from "../core/errors.ts";
import { defineOp } from "../core/ops.ts";
import { composeProject } from "./compose.ts";
import { composeConfig, dockerEngine, ownerIds, writeProject } from "./project.ts";
import { systemdProject } from "./systemd.ts";

const version = (): string =>
  (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;

const writes = { readOnly: false, destructive: false, idempotent: false };

const composeOutput = z.object({
  dir: z.string(),
  engine: z.enum(["ami", "synapse"]),
  domain: z.string(),
  files: z.array(z.string()),
  /** `docker compose config` (or docker-compose 1.x) on the written project, when one is installed. */
  composeCheck: z.object({ tool: z.string().nullable(), ok: z.boolean(), output: z.string() }),
  dockerEngine: z.object({ available: z.boolean(), detail: z.string() }),
  next: z.array(z.string()),
});

export const deployComposeOp = defineOp({
  name: "deploy.compose",
  summary: "Write a production Docker Compose project: homeserver, PostgreSQL, Redis, coturn, Element Web, Caddy (TLS)",
  description:
    "Writes DIR/compose.yaml and everything it mounts: the homeserver (--engine ami: this repo's image, built from " +
    "its Dockerfile; --engine synapse: Synapse with a generated homeserver.yaml and signing key), PostgreSQL, Redis, " +
    "coturn, Element Web (config.json pointing at the homeserver) and Caddy (automatic TLS, /.well-known/matrix). " +
    "Hosts: DOMAIN (the server name), matrix.DOMAIN, element.DOMAIN. Every secret is random; files holding one are " +
    "0600. Checks the project with `docker compose config` when Compose is installed, and says what to run.",
  input: z
    .object({
      dir: z.string().default("ami-streams-deploy").describe("directory to create"),
      domain: z
        .string()
        .optional()
        .describe("the Matrix server name, user IDs @alice:DOMAIN (default: matrix.serverName, unless localhost)"),
      engine: z.enum(["ami", "synapse"]).default("ami").describe("homeserver: ami (ours) or synapse"),
      matrixHost: z.string().optional().describe("homeserver host (default matrix.DOMAIN)"),
      elementHost: z.string().optional().describe("Element Web host (default element.DOMAIN)"),
      // Both end up in config files (Caddyfile, turnserver.conf): checked, so they cannot carry other directives.
      email: z
        .string()
        .regex(/^[^\s@{}"]+@[A-Za-z0-9.-]+$/, "must be an e-mail address")
        .optional()
        .describe("ACME account e-mail for Caddy's certificates"),
      externalIp: z
        .string()
        .refine((v) => isIP(v) !== 0, "must be an IP address")
        .optional()
        .describe("coturn's public IP when the host is behind NAT"),
      federation: z.boolean().default(true).describe("federate with other Matrix servers"),
      image: z.string().optional().describe("use this prebuilt ami-streams image instead of building one"),
      force: z.boolean().default(false).describe("overwrite the generated files in an existing DIR (new secrets)"),
    })
    .strict(),
  output: composeOutput,
  annotations: writes,
  positional: ["dir"],
  human: (o) =>
    [
      `wrote ${o.files.length} files to ${o.dir} (${o.engine === "ami" ? "ami-streams" : "Synapse"} for ${o.domain})`,
      o.composeCheck.tool
        ? `${o.composeCheck.tool} config: ${o.composeCheck.ok ? "valid" : `INVALID\n${o.composeCheck.output}`}`
        : `not checked with Compose: ${o.composeCheck.output}`,
      o.dockerEngine.available
        ? `Docker engine here: ${o.dockerEngine.detail}`
        : `no Docker engine here (${o.dockerEngine.detail}): run it on a host with Docker:`,
      ...o.next.map((l) => `  ${l}`),
    ].join("\n"),
  async run(i, ctx) {
    const domain = i.domain ?? ctx.config?.matrix.serverName;
    if (!domain || domain === "localhost")
      throw new AmiError(
        "AMI_INVALID_INPUT",
        "give --domain: the public DNS name your users' IDs end with (@alice:DOMAIN); matrix.serverName is localhost",
      );
    const owner = ownerIds();
    const project = composeProject({
      domain,
      engine: i.engine,
      matrixHost: i.matrixHost,
      elementHost: i.elementHost,
      email: i.email,
      externalIp: i.externalIp,
      federation: i.federation,
      image: i.image,
      repo: repoRoot.replace(/\/$/, ""),
      version: version(),
      uid: owner.uid,
      gid: owner.gid,
    });
    const dir = resolve(i.dir);
    ctx.progress(0, 2, "writing");
    const files = writeProject(dir, project, i.force);
    ctx.progress(1, 2, "checking with docker compose config");
    const composeCheck = composeConfig(dir);
    const engine = dockerEngine();
    ctx.progress(2, 2);
    const build = i.engine === "ami" && !i.image ? " --build" : "";
    return {
      dir,
      engine: i.engine,
      domain,
      files,
      composeCheck,
      dockerEngine: engine,
      next: [
        `cd ${dir}`,
        `docker compose up -d${build}`,
        "docker compose ps",
        "(README.md there: DNS, firewall, first user)",
      ],
    };
  },
});

export const deploySystemdOp = defineOp({
  name: "deploy.systemd",
  summary: "Write systemd units for a bare-metal host: the supervisor as one hardened service, a dedicated user",
  description:
    "Writes DIR/ami-streams.service (runs `ami-streams supervise --all` as the ami-streams user, sandboxed: " +
    "ProtectSystem=strict, NoNewPrivileges, no capabilities, a system-call filter...), ami-streams.sysusers.conf " +
    "(the user), config.yaml (0600, random secrets) and README.md with the install commands. Checks the unit with " +
    "`systemd-analyze verify` when it is installed.",
  input: z
    .object({
      dir: z.string().default("ami-streams-systemd").describe("directory to create"),
      installDir: z.string().optional().describe("where ami-streams is installed on the host (default: this checkout)"),
      domain: z.string().optional().describe("the Matrix server name"),
      database: z.string().optional().describe("a postgres:// URL (default: SQLite in /var/lib/ami-streams)"),
      force: z.boolean().default(false).describe("overwrite the generated files in an existing DIR"),
    })
    .strict(),
  output: z.object({
    dir: z.string(),
    files: z.array(z.string()),
    verify: z.object({ tool: z.string().nullable(), ok: z.boolean(), output: z.string() }),
    /** `systemd-analyze security --offline=true`: 0 (locked down) to 10 (fully exposed); null without the tool. */
    exposure: z.number().nullable(),
    next: z.array(z.string()),
  }),
  annotations: writes,
  positional: ["dir"],
  human: (o) =>
    [
      `wrote ${o.files.length} files to ${o.dir}`,
      o.verify.tool
        ? `systemd-analyze verify: ${o.verify.ok ? "ok" : `FAILED\n${o.verify.output}`}`
        : `not verified: ${o.verify.output}`,
      ...(o.exposure === null
        ? []
        : [`systemd-analyze security: exposure ${o.exposure} (0 = locked down, 10 = exposed)`]),
      "install (as root):",
      ...o.next.map((l) => `  ${l}`),
    ].join("\n"),
  async run(i) {
    const { securityExposure, verifyUnit } = await import("./verify.ts");
    const dir = resolve(i.dir);
    const project = systemdProject({
      installDir: i.installDir ?? repoRoot.replace(/\/$/, ""),
      domain: i.domain,
      database: i.database,
    });
    const files = writeProject(dir, project, i.force, false);
    const unit = join(dir, "ami-streams.service");
    return {
      dir,
      files,
      verify: verifyUnit(unit),
      exposure: securityExposure(unit),
      next: [`cd ${dir}`, "see README.md (sysusers, /etc/ami-streams/config.yaml, systemctl enable --now ami-streams)"],
    };
  },
});

export const deployOps = [deployComposeOp, deploySystemdOp];
