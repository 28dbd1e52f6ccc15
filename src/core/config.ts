/**
 * Config machinery that knows no feature: shared field schemas, reading and validating a config file, the issue
 * format (`'media.rtmpPort' must be ...`). The schema itself is assembled from the feature manifests in
 * src/config.ts. Precedence: --config FILE > $AMI_STREAMS_CONFIG > <home>/config.yaml > defaults.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { type ZodError, z } from "zod";
import { AmiError } from "./errors.ts";
import { defaultHome } from "./paths.ts";

export const portSchema = z.number().int().min(0).max(65535);
export const hostSchema = z.string().min(1);

/** The sections every install has, whatever its features: the runtime home and logging. */
export const baseShape = {
  /** Runtime directory (pid, state, logs, data). $AMI_STREAMS_HOME wins over this. */
  home: z.string().nullable().default(null),
  log: z
    .object({ level: z.enum(["debug", "info", "warn", "error"]).default("info") })
    .strict()
    .default({ level: "info" }),
};

export interface ConfigIssue {
  /** Dotted key path, e.g. `matrix.limits.perUser.burst`. */
  key: string;
  message: string;
}

/** Every issue of a failed parse, each with its key path and a message quoting it. */
export function issuesOf(error: ZodError): ConfigIssue[] {
  return error.issues.map((i) => {
    const key = i.path.join(".") || "(root)";
    let message = i.message;
    if (i.code === "unrecognized_keys") {
      return { key: [...i.path, ...i.keys].join("."), message: "unknown key" };
    }
    // A bad record key (a program's name): say what is wrong with it, not only that it is.
    if (i.code === "invalid_key") message = i.issues[0]?.message ?? message;
    message = `'${key}' ${message.charAt(0).toLowerCase()}${message.slice(1)}`;
    return { key, message };
  });
}

/** Which config file is in effect (undefined: none, defaults apply). */
export function resolveConfigPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (explicit) return explicit;
  if (env.AMI_STREAMS_CONFIG) return env.AMI_STREAMS_CONFIG;
  const p = join(defaultHome(env), "config.yaml");
  return existsSync(p) ? p : undefined;
}

export function parseConfigText(text: string, source = "config"): unknown {
  try {
    return YAML.parse(text) ?? {};
  } catch (e) {
    throw new AmiError("AMI_INVALID_CONFIG", `${source}: not valid YAML: ${(e as Error).message}`);
  }
}

/** The raw value of the config file in effect (`{}` without one). */
export function readConfigFile(path: string | undefined): unknown {
  if (!path) return {};
  if (!existsSync(path)) throw new AmiError("AMI_INVALID_CONFIG", `config file not found: ${path}`);
  return parseConfigText(readFileSync(path, "utf8"), path);
}

export function invalidConfig(path: string | undefined, issues: ConfigIssue[]): AmiError {
  return new AmiError(
    "AMI_INVALID_CONFIG",
    `${path}: ${issues.length} error(s):\n${issues.map((i) => `  ${i.message}`).join("\n")}`,
    { issues },
  );
}

/** The runtime home for a config: $AMI_STREAMS_HOME, else config.home, else ~/.ami-streams. */
export function homeFor(config: { home: string | null }, env: NodeJS.ProcessEnv = process.env): string {
  if (env.AMI_STREAMS_HOME) return defaultHome(env);
  return config.home ?? defaultHome(env);
}
