/**
 * The one config schema, assembled from the feature manifests (src/features.ts): the base sections, one section a
 * feature (its schema lives in its folder), and the operator's `programs:`. `config/ami-streams.example.yaml` is
 * tested to equal these defaults.
 */
import { z } from "zod";
import {
  baseShape,
  type ConfigIssue,
  invalidConfig,
  issuesOf,
  readConfigFile,
  resolveConfigPath,
} from "./core/config.ts";
import { programNameSchema, programSchema } from "./core/program.ts";
import { features, reservedNames } from "./features.ts";

type Features = (typeof features)[number];
type Sections = {
  [F in Features as F["config"] extends z.ZodType ? F["name"] : never]: F["config"] extends z.ZodType
    ? z.ZodDefault<F["config"]>
    : never;
};

const sectionOf = (s: z.ZodType) => s.default(() => s.parse({}));
const sections = Object.fromEntries(
  features.flatMap((f): [string, z.ZodType][] => (f.config ? [[f.name, sectionOf(f.config)]] : [])),
) as unknown as Sections;

export const configSchema = z
  .object({
    ...baseShape,
    ...sections,
    /**
     * Your own programs, supervised like ours (started by `up`, restarted, stopped by `down`, shown in `status`
     * and `monitor`, `ami-streams <name> start|stop|status|restart`), keyed by name. Example:
     * `workerd: { argv: [workerd, serve, edge.capnp], health: { tcp: "127.0.0.1:8787" } }`.
     */
    programs: z
      .record(
        programNameSchema.refine((n) => !reservedNames().has(n), "is a built-in command or service name"),
        programSchema,
      )
      .default({}),
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type { CasConfig } from "./cas/config.ts";
export { homeFor, parseConfigText, resolveConfigPath } from "./core/config.ts";
export type { MatrixConfig } from "./matrix/config.ts";
export type { MediaConfig } from "./media/config.ts";
export type { WebConfig } from "./web/config.ts";
export type { ConfigIssue };

/** Validate a parsed YAML/JSON value. Returns every issue with its key path. */
export function validateConfig(raw: unknown): { config?: Config; issues: ConfigIssue[] } {
  const r = configSchema.safeParse(raw ?? {});
  return r.success ? { config: r.data, issues: [] } : { issues: issuesOf(r.error) };
}

export const defaultConfig = (): Config => configSchema.parse({});

/** Load and validate; throws AMI_INVALID_CONFIG listing every issue. */
export function loadConfig(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
): { config: Config; path: string | undefined } {
  const path = resolveConfigPath(explicit, env);
  const { config, issues } = validateConfig(readConfigFile(path));
  if (!config) throw invalidConfig(path, issues);
  return { config, path };
}
