/** `config validate|show|path|init` and `matrix config validate|edit`. */
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline/promises";
import { z } from "zod";
import { type ConfigIssue, parseConfigText, resolveConfigPath, validateConfig } from "../../config.ts";
import { AmiError } from "../../core/errors.ts";
import { defineOp, type OpContext } from "../../core/ops.ts";
import { defaultHome } from "../../core/paths.ts";
import { looksLikeSynapse, parseSynapseYaml, validateSynapseConfig } from "../../matrix/synapse-config.ts";
import { repoRoot } from "../bin-path.ts";

export const exampleConfigPath = join(repoRoot, "config", "ami-streams.example.yaml");
const issueSchema = z.object({ key: z.string(), message: z.string() });
const validateOutput = z.object({
  file: z.string().nullable(),
  /** Which kind of file was checked: ours, or a Synapse homeserver.yaml. */
  kind: z.enum(["ami-streams", "synapse"]),
  valid: z.boolean(),
  issues: z.array(issueSchema),
});
const fileInput = z
  .object({ file: z.string().optional().describe("config file to check (default: the one in effect)") })
  .strict();

function check(file: string | undefined, prefix?: string, synapse = false): z.infer<typeof validateOutput> {
  const kind = synapse ? "synapse" : "ami-streams";
  if (file && !existsSync(file))
    return { file, kind, valid: false, issues: [{ key: "(file)", message: `not found: ${file}` }] };
  let raw: unknown = {};
  try {
    if (file) raw = parseConfigText(readFileSync(file, "utf8"), file);
  } catch (e) {
    return { file: file ?? null, kind, valid: false, issues: [{ key: "(yaml)", message: (e as Error).message }] };
  }
  // The homeserver's config may be Synapse's (a Compose deploy with --engine synapse): told apart by its keys.
  if (prefix === "matrix" && file && (synapse || looksLikeSynapse(raw))) {
    let issues: ConfigIssue[];
    try {
      issues = validateSynapseConfig(parseSynapseYaml(readFileSync(file, "utf8")));
    } catch (e) {
      issues = [{ key: "(yaml)", message: `${file}: not valid YAML: ${(e as Error).message}` }];
    }
    return { file, kind: "synapse", valid: issues.length === 0, issues };
  }
  let { issues } = validateConfig(raw);
  if (prefix) issues = issues.filter((i) => i.key === prefix || i.key.startsWith(`${prefix}.`));
  return { file: file ?? null, kind: "ami-streams", valid: issues.length === 0, issues };
}

const humanValidate = (o: z.infer<typeof validateOutput>) =>
  o.valid
    ? `${o.file ?? "(defaults, no config file)"}: valid${o.kind === "synapse" ? " (Synapse homeserver.yaml)" : ""}`
    : [
        `${o.file}: ${o.issues.length} error(s)${o.kind === "synapse" ? " (Synapse homeserver.yaml)" : ""}`,
        ...o.issues.map((i) => `  ${i.key}: ${i.message}`),
      ].join("\n");

const ro = { readOnly: true, destructive: false, idempotent: true };

export const configValidateOp = defineOp({
  name: "config.validate",
  summary: "Validate a config file; prints every error with its key path (CLI exit 2 when invalid)",
  input: fileInput,
  output: validateOutput,
  annotations: ro,
  positional: ["file"],
  human: humanValidate,
  exitCode: (o) => (o.valid ? 0 : 2),
  run: async ({ file }, ctx) => check(file ?? ctx.configPath),
});

export const matrixConfigValidateOp = defineOp({
  name: "matrix.config.validate",
  summary: "Validate the matrix section of a config file, or a Synapse homeserver.yaml (CLI exit 2 when invalid)",
  description:
    "Checks the homeserver's config: the `matrix` section of an ami-streams config file, or a Synapse " +
    "homeserver.yaml (recognised by its server_name/listeners/report_stats keys, or forced with --synapse): " +
    "required keys, types, listener and database shapes (psycopg2, sqlite3), secrets left at placeholder values, " +
    "and open registration without a captcha, token or verification. Every error names its key path.",
  input: fileInput.extend({
    synapse: z.boolean().default(false).describe("read the file as a Synapse homeserver.yaml"),
  }),
  output: validateOutput,
  annotations: ro,
  positional: ["file"],
  human: humanValidate,
  exitCode: (o) => (o.valid ? 0 : 2),
  run: async ({ file, synapse }, ctx) => check(file ?? ctx.configPath, "matrix", synapse),
});

export const configShowOp = defineOp({
  name: "config.show",
  summary: "Print the effective config (file merged over defaults)",
  input: z.object({}).strict(),
  output: z.object({ file: z.string().nullable(), config: z.record(z.string(), z.unknown()) }),
  annotations: ro,
  run: async (_i, ctx) => ({ file: ctx.configPath ?? null, config: ctx.config as Record<string, unknown> }),
});

export const configPathOp = defineOp({
  name: "config.path",
  summary: "Print which config file is in effect and where the default one lives",
  input: z.object({}).strict(),
  output: z.object({ file: z.string().nullable(), default: z.string(), home: z.string() }),
  annotations: ro,
  human: (o) => `${o.file ?? "(none: defaults apply)"}\ndefault location: ${o.default}\nruntime home: ${o.home}`,
  run: async (_i, ctx) => ({
    file: ctx.configPath ?? null,
    default: join(defaultHome(), "config.yaml"),
    home: ctx.paths.home,
  }),
});

export const configInitOp = defineOp({
  name: "config.init",
  summary: "Write the annotated example config (equal to the defaults) to the default location",
  input: z
    .object({
      path: z.string().optional().describe("where to write (default: <home>/config.yaml)"),
      force: z.boolean().default(false).describe("overwrite an existing file"),
    })
    .strict(),
  output: z.object({ file: z.string() }),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  human: (o) => `wrote ${o.file}`,
  async run({ path, force }) {
    const file = path ?? join(defaultHome(), "config.yaml");
    if (existsSync(file) && !force) {
      throw new AmiError("AMI_INVALID_INPUT", `${file} already exists (use --force to overwrite)`);
    }
    mkdirSync(dirname(file), { recursive: true });
    copyFileSync(exampleConfigPath, file);
    return { file };
  },
});

async function askYes(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const a = (await rl.question(question)).trim().toLowerCase();
    return a === "" || a === "y" || a === "yes";
  } finally {
    rl.close();
  }
}

const showIssues = (ctx: OpContext, issues: ConfigIssue[]) => {
  process.stderr.write(`config is invalid, not saved:\n${issues.map((i) => `  ${i.key}: ${i.message}`).join("\n")}\n`);
  void ctx;
};

export const matrixConfigEditOp = defineOp({
  name: "matrix.config.edit",
  summary: "Edit the config in $EDITOR; saves only a config that validates",
  description:
    "Copies the config (or the annotated example when there is none yet) to a temp file, opens $EDITOR (or $VISUAL, " +
    "else vi) on it, validates the result and saves it only when valid. On an invalid edit it asks to re-edit on a " +
    "terminal and aborts otherwise; the original file is never touched by an invalid edit.",
  input: z
    .object({ file: z.string().optional().describe("config file (default: the one in effect or <home>/config.yaml)") })
    .strict(),
  output: z.object({ file: z.string(), saved: z.boolean(), message: z.string() }),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  positional: ["file"],
  cliOnly: true,
  human: (o) => o.message,
  async run({ file: explicit }, ctx) {
    const file = explicit ?? ctx.configPath ?? resolveConfigPath() ?? join(defaultHome(), "config.yaml");
    const original = existsSync(file) ? readFileSync(file, "utf8") : readFileSync(exampleConfigPath, "utf8");
    const dir = mkdtempSync(join(tmpdir(), "ami-config-"));
    const tmp = join(dir, "config.yaml");
    writeFileSync(tmp, original);
    const editor = process.env.VISUAL || process.env.EDITOR || "vi";
    try {
      for (;;) {
        // Through sh so EDITOR may carry arguments ("code --wait").
        const r = spawnSync("/bin/sh", ["-c", `${editor} "$1"`, "sh", tmp], { stdio: "inherit" });
        if (r.status !== 0)
          throw new AmiError("AMI_INTERNAL", `editor '${editor}' exited with ${r.status ?? r.signal}; nothing saved`);
        const edited = readFileSync(tmp, "utf8");
        const result = check(tmp);
        if (result.valid) {
          if (edited === original && existsSync(file)) return { file, saved: false, message: `no changes to ${file}` };
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(`${file}.tmp`, edited);
          renameSync(`${file}.tmp`, file);
          return { file, saved: true, message: `saved ${file}` };
        }
        showIssues(ctx, result.issues);
        if (!(ctx.interactive && process.stdin.isTTY && (await askYes("Edit again? [Y/n] ")))) {
          throw new AmiError(
            "AMI_INVALID_CONFIG",
            `edit aborted, ${file} left unchanged:\n${result.issues.map((i) => `  ${i.key}: ${i.message}`).join("\n")}`,
            { issues: result.issues },
          );
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});

export const configOps = [configValidateOp, configShowOp, configPathOp, configInitOp];

/** The homeserver's config commands (`matrix config validate|edit`): listed with the matrix feature's ops. */
export const matrixConfigOps = [matrixConfigValidateOp, matrixConfigEditOp];
