/**
 * Backups: `backup create|verify|restore|list` ops (in the calling process) and the `backup` service, which makes
 * them on `backup.schedule` and keeps `backup.keep`.
 */
import { defineFeature, type Feature } from "../core/feature.ts";
import { backupSchema } from "./config.ts";
import { backupService } from "./service.ts";

const backupErrors = {
  /** A backup whose files do not match its manifest, or whose dump cannot be read. */
  AMI_BACKUP_CORRUPT: 422,
  /** A restore into a home that already holds a homeserver. */
  AMI_BACKUP_TARGET_NOT_EMPTY: 409,
} as const;
type BackupErrors = typeof backupErrors;
declare module "../core/errors.ts" {
  interface FeatureErrorCodes extends BackupErrors {}
}

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const backupFeature: Feature<"backup", typeof backupSchema> = defineFeature({
  name: "backup",
  summary: "Backups of the homeserver database, media and store objects, keys and config; scheduled, with retention",
  config: backupSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  services: [backupService],
  errors: backupErrors,
  ops: async () => (await import("./ops.ts")).backupOps,
});
