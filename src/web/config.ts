/** The `web` section. */
import { z } from "zod";
import { hostSchema as host, portSchema as port } from "../core/config.ts";

/** The `web` service: the embedded chat client for people (web/chat, built with Vite). */
export const webSchema = z
  .object({
    enabled: z.boolean().default(true),
    host: host.default("127.0.0.1"),
    port: port.default(8080),
  })
  .strict();

export type WebConfig = z.output<typeof webSchema>;
