/**
 * TURN: coturn (Debian's `turnserver`) as a supervised program (`ami-streams turn start|stop|status|restart`,
 * started by `up` when `turn.enabled`), credentials in the shared-secret scheme for the homeserver's
 * `/voip/turnServer` and for agents (`turn credentials`).
 */
import { defineFeature, type Feature } from "../core/feature.ts";
import { defineProgram } from "../core/program.ts";
import { turnSchema } from "./config.ts";
import { hostPort, turnArgv, turnUris } from "./coturn.ts";

// Annotated: the config type is derived from this list, and ops refer to the config type.
export const turnFeature: Feature<"turn", typeof turnSchema> = defineFeature({
  name: "turn",
  summary: "TURN relay (coturn) for VoIP and WebRTC behind NAT, with time-limited credentials",
  config: turnSchema,
  configExample: new URL("./config.example.yaml", import.meta.url),
  programs: [
    defineProgram({
      name: "turn",
      summary: "coturn TURN/STUN relay",
      enabled: (c) => c.turn.enabled,
      spec: (c) => ({
        argv: turnArgv(c),
        health: { tcp: hostPort(c.turn.host, c.turn.port) },
        readyTimeoutSeconds: 15,
      }),
      describe: (c) => [`turn: ${turnUris(c).join(", ")} (credentials: ami-streams turn credentials)`],
    }),
  ],
  ops: async () => (await import("./ops.ts")).turnOps,
});
