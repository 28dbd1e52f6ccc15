/**
 * Units for a bare-metal host (`ami-streams deploy systemd`): the supervisor as one service (`supervise --all`,
 * which starts every enabled service and program and stops them on SIGTERM), run as a dedicated system user made by
 * systemd-sysusers, with systemd's sandboxing. Its state lives in /var/lib/ami-streams (StateDirectory), its config
 * in /etc/ami-streams (ConfigurationDirectory).
 */
import YAML from "yaml";
import { validateConfig } from "../config.ts";
import { AmiError } from "../core/errors.ts";
import { newSecret, type Project } from "./project.ts";

export const SYSTEMD_USER = "ami-streams";

export interface SystemdOptions {
  /** Where the repo (bin/ami-streams) is installed on the host, absolute. */
  installDir: string;
  /** server_name; default: the host's own name is not guessed, localhost is kept. */
  domain?: string;
  /** A postgres:// URL; default: SQLite in the state directory. */
  database?: string;
}

export function serviceUnit(o: SystemdOptions): string {
  const bin = `${o.installDir.replace(/\/+$/, "")}/bin/ami-streams`;
  // ProtectHome=yes would hide an install under /home or /root from the service itself.
  const underHome = /^\/(home|root)(\/|$)/.test(o.installDir);
  return `# ami-streams: the supervisor and every enabled service, written by \`ami-streams deploy systemd\`.
# Install: see README.md next to this file. Logs: journalctl -u ami-streams (and /var/lib/ami-streams/logs/).
[Unit]
Description=ami-streams real-time platform (Matrix homeserver, media, CDN)
Documentation=file://${o.installDir.replace(/\/+$/, "")}/README.md
After=network-online.target postgresql.service redis-server.service
Wants=network-online.target

[Service]
Type=simple
User=${SYSTEMD_USER}
Group=${SYSTEMD_USER}
Environment=AMI_STREAMS_HOME=/var/lib/ami-streams
Environment=AMI_STREAMS_CONFIG=/etc/ami-streams/config.yaml
ExecStartPre=${bin} config validate /etc/ami-streams/config.yaml
ExecStart=${bin} supervise --all
# SIGTERM to the supervisor alone; it stops its services (each: stop signal, then SIGKILL after stopGraceMs), then
# exits. What is left after TimeoutStopSec gets SIGKILL.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
RestartSec=2s
StateDirectory=ami-streams
StateDirectoryMode=0700
ConfigurationDirectory=ami-streams
ConfigurationDirectoryMode=0750
UMask=0077
LimitNOFILE=65536

# Sandboxing. MemoryDenyWriteExecute is left out: V8's JIT needs writable executable memory.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=${underHome ? "read-only" : "yes"}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`;
}

export const sysusersConf = (): string =>
  `# systemd-sysusers: the dedicated user of ami-streams.service (no login shell, home = its state directory).
u ${SYSTEMD_USER} - "ami-streams" /var/lib/ami-streams /usr/sbin/nologin
`;

export function hostConfigYaml(o: SystemdOptions): string {
  const config = {
    home: "/var/lib/ami-streams",
    matrix: {
      ...(o.domain ? { serverName: o.domain, publicBaseUrl: `https://matrix.${o.domain}` } : {}),
      database: o.database ?? "sqlite",
      registration: { enabled: false, sharedSecret: newSecret() },
    },
    control: { token: newSecret() },
  };
  const { issues } = validateConfig(config);
  if (issues.length > 0)
    throw new AmiError("AMI_INTERNAL", `generated config is invalid: ${issues.map((i) => i.message).join("; ")}`);
  return (
    "# ami-streams config for the systemd unit (/etc/ami-streams/config.yaml, readable by root and the\n" +
    "# ami-streams group only: it holds secrets). Every other key has its default: `ami-streams config init\n" +
    "# --path example.yaml` writes them all, annotated. Check with: ami-streams config validate <file>\n" +
    YAML.stringify(config, { lineWidth: 0 })
  );
}

function readme(o: SystemdOptions): string {
  return `# ami-streams on a bare-metal host (systemd)

Written by \`ami-streams deploy systemd\`. Services listen on 127.0.0.1 by default: put a TLS reverse proxy in front
(see \`ami-streams deploy compose\` for a Caddyfile), or change the hosts in config.yaml.

\`\`\`sh
sudo install -m 0644 ami-streams.sysusers.conf /etc/sysusers.d/ami-streams.conf
sudo systemd-sysusers
sudo install -d -m 0750 -o root -g ${SYSTEMD_USER} /etc/ami-streams
sudo install -m 0640 -o root -g ${SYSTEMD_USER} config.yaml /etc/ami-streams/config.yaml
sudo install -m 0644 ami-streams.service /etc/systemd/system/ami-streams.service
sudo systemctl daemon-reload
sudo systemctl enable --now ami-streams
systemctl status ami-streams
\`\`\`

The unit runs \`${o.installDir.replace(/\/+$/, "")}/bin/ami-streams supervise --all\` (the install must be readable by the
${SYSTEMD_USER} user). State: /var/lib/ami-streams (0700). \`systemd-analyze security ami-streams\` shows the sandbox.
`;
}

export function systemdProject(o: SystemdOptions): Project {
  if (!o.installDir.startsWith("/")) throw new AmiError("AMI_INVALID_INPUT", "--install-dir must be an absolute path");
  return {
    dirs: [],
    files: [
      { path: "ami-streams.service", content: serviceUnit(o), mode: 0o644 },
      { path: "ami-streams.sysusers.conf", content: sysusersConf(), mode: 0o644 },
      { path: "config.yaml", content: hostConfigYaml(o), mode: 0o600 },
      { path: "README.md", content: readme(o), mode: 0o644 },
    ],
  };
}
