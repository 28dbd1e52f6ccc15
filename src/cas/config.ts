/** The `cas` section. */
import { z } from "zod";

/**
 * The content-addressed store (`ami-streams cas ...`; later Matrix media, recordings, CDN caches, P2P pieces).
 * Chunk sizes steer FastCDC: changing them later still works but new content stops deduplicating against old.
 */
export const casSchema = z
  .object({
    /** Where the store lives; null: <home>/data/cas. */
    root: z.string().min(1).nullable().default(null),
    chunkMinBytes: z
      .number()
      .int()
      .min(64)
      .default(16 * 1024),
    /** Target average chunk size; a power of two (FastCDC's masks are bit counts). */
    chunkAvgBytes: z
      .number()
      .int()
      .refine((n) => n > 0 && (n & (n - 1)) === 0, "must be a power of two")
      .default(64 * 1024),
    chunkMaxBytes: z
      .number()
      .int()
      .max(64 * 1024 * 1024)
      .default(256 * 1024),
    /** fsync chunks, manifests and directories before a put returns (off: a power cut may lose recent puts). */
    fsync: z.boolean().default(true),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.chunkAvgBytes <= c.chunkMinBytes)
      ctx.addIssue({ code: "custom", path: ["chunkAvgBytes"], message: "must be greater than chunkMinBytes" });
    if (c.chunkMaxBytes <= c.chunkAvgBytes)
      ctx.addIssue({ code: "custom", path: ["chunkMaxBytes"], message: "must be greater than chunkAvgBytes" });
  });

export type CasConfig = z.output<typeof casSchema>;
