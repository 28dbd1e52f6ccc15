/**
 * `ami-streams backup create|verify|restore|list` (MCP: backup_create, ...): backups of the homeserver database,
 * the content-addressed store (Matrix media, recordings), legacy media, the signing key and the config. They run
 * in the calling process; the `backup` service runs `create` on a schedule.
 */
import { resolve } from "node:path";
import { z } from "zod";
import { defineOp, type OpDef } from "../core/ops.ts";
import { createBackup } from "./create.ts";
import { homeLayout } from "./layout.ts";
import { restoreDir } from "./restore.ts";
import { listBackups, prune } from "./schedule.ts";
import { openBackup } from "./tar.ts";
import { assertIntact, verifyDir } from "./verify.ts";

const pathInput = z.string().min(1).describe("backup directory or .tar file");

export const backupCreate = defineOp({
  name: "backup.create",
  summary: "Back up the homeserver database, media and store objects, keys and config (safe while running)",
  description:
    "SQLite: online backup API (one consistent snapshot); PostgreSQL: pg_dump. Then every store object, copied and " +
    "verified, legacy media, keys, the config file, and a manifest with the SHA-256 of every file.",
  input: z
    .object({
      dir: z
        .string()
        .min(1)
        .optional()
        .describe("directory to write the backup in (default backup.dir, <home>/backups)"),
      name: z.string().min(1).optional().describe("name of the backup (default ami-backup-<UTC time>)"),
      tar: z.boolean().optional().describe("write one .tar file (default backup.tar)"),
      prune: z
        .boolean()
        .default(false)
        .describe("then remove generated backups past backup.keep (in the same directory)"),
    })
    .strict(),
  output: z.object({
    path: z.string(),
    name: z.string(),
    database: z.string(),
    files: z.number(),
    bytes: z.number(),
    events: z.number(),
    casObjects: z.number(),
    durationMs: z.number(),
    pruned: z.array(z.string()),
  }),
  annotations: { readOnly: false, destructive: false, idempotent: false },
  human: (r) =>
    [
      `backup  ${r.path}`,
      `        ${r.database}, ${r.events} events, ${r.casObjects} store objects, ${r.files} files, ${r.bytes} bytes, ${r.durationMs} ms`,
      ...r.pruned.map((p) => `removed ${p}`),
    ].join("\n"),
  async run(i, ctx) {
    const r = await createBackup({
      config: ctx.config,
      configPath: ctx.configPath,
      paths: ctx.paths,
      log: ctx.log,
      dir: i.dir ? resolve(i.dir) : undefined,
      name: i.name,
      tar: i.tar ?? ctx.config.backup.tar,
      progress: ctx.progress,
      signal: ctx.signal,
    });
    const dir = i.dir ? resolve(i.dir) : homeLayout(ctx.config, ctx.paths).backupDir;
    const pruned = i.prune ? await prune(dir, ctx.config.backup.keep) : [];
    return { ...r, pruned };
  },
});

export const backupVerify = defineOp({
  name: "backup.verify",
  summary: "Check a backup: every file against its SHA-256, the database dump readable, every store chunk",
  input: z.object({ path: pathInput }).strict(),
  output: z.object({
    ok: z.boolean(),
    name: z.string(),
    createdAt: z.string(),
    database: z.string(),
    files: z.number(),
    bytes: z.number(),
    events: z.number(),
    casObjects: z.number(),
    problems: z.array(z.string()),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["path"],
  human: (r) =>
    `ok: ${r.name} (${r.createdAt}), ${r.database}, ${r.events} events, ${r.casObjects} store objects, ${r.files} files, ${r.bytes} bytes verified`,
  async run({ path }, ctx) {
    const b = await openBackup(resolve(path));
    try {
      const { result } = await verifyDir(b.dir, ctx.progress);
      assertIntact(result, path);
      return result;
    } finally {
      await b.cleanup();
    }
  },
});

export const backupRestore = defineOp({
  name: "backup.restore",
  summary: "Restore a backup into this (empty) home: database, media and store objects, keys, config",
  description:
    "Verifies the backup first. The target is the config in effect (its matrix.database, cas.root, home); a home that " +
    "already holds a database, store objects or a signing key is refused unless --force. Stop the homeserver first.",
  input: z
    .object({
      path: pathInput,
      database: z
        .string()
        .min(1)
        .optional()
        .describe(
          "restore into this database ('sqlite', 'sqlite:<path>' or a postgres:// URL) instead of matrix.database",
        ),
      force: z.boolean().default(false).describe("overwrite a home that is not empty"),
    })
    .strict(),
  output: z.object({
    name: z.string(),
    home: z.string(),
    database: z.string(),
    events: z.number(),
    casObjects: z.number(),
    keys: z.array(z.string()),
    config: z.string(),
  }),
  annotations: { readOnly: false, destructive: true, idempotent: false },
  positional: ["path"],
  human: (r) =>
    [
      `restored ${r.name} into ${r.home}`,
      `  database ${r.database} (${r.events} events)`,
      `  ${r.casObjects} store objects; keys: ${r.keys.join(", ") || "none"}`,
      `  config: ${r.config}`,
    ].join("\n"),
  async run(i, ctx) {
    const b = await openBackup(resolve(i.path));
    try {
      return await restoreDir(b.dir, {
        config: ctx.config,
        configPath: ctx.configPath,
        paths: ctx.paths,
        database: i.database,
        force: i.force,
        progress: ctx.progress,
      });
    } finally {
      await b.cleanup();
    }
  },
});

export const backupList = defineOp({
  name: "backup.list",
  summary: "List the generated backups in backup.dir, newest first",
  input: z.object({ dir: z.string().min(1).optional().describe("directory (default backup.dir)") }).strict(),
  output: z.object({
    dir: z.string(),
    backups: z.array(z.object({ name: z.string(), path: z.string(), createdAt: z.string(), tar: z.boolean() })),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (r) =>
    r.backups.length
      ? r.backups.map((b) => `${b.createdAt}  ${b.path}`).join("\n")
      : `no backups in ${r.dir} (ami-streams backup create)`,
  async run(i, ctx) {
    const dir = i.dir ? resolve(i.dir) : homeLayout(ctx.config, ctx.paths).backupDir;
    return {
      dir,
      backups: listBackups(dir).map((b) => ({
        name: b.name,
        path: b.path,
        createdAt: new Date(b.createdTs).toISOString(),
        tar: b.tar,
      })),
    };
  },
});

export const backupOps: OpDef[] = [backupCreate, backupVerify, backupRestore, backupList];
