/**
 * Every supervised service. Each becomes `ami-streams <name> start|stop|status|restart` and is started by `up`.
 */
import type { ProgramDef } from "../core/program.ts";
import type { ServiceDef } from "../core/service.ts";
import { matrixService } from "../matrix/matrix-service.ts";
import { mediaService } from "../media/service.ts";
import { testHttpService } from "../test/http-service.ts";
import { webService } from "../web/service.ts";

/**
 * The small real HTTP service in src/test/ joins the list only when AMI_STREAMS_TEST_SERVICE_PORT is set,
 * so supervisor tests run without the homeserver (the variable is inherited by supervisor and children).
 */
export const services: ServiceDef[] = [
  matrixService,
  webService,
  mediaService,
  ...(process.env.AMI_STREAMS_TEST_SERVICE_PORT ? [testHttpService] : []),
];

export const findService = (name: string): ServiceDef | undefined => services.find((s) => s.name === name);

/** External programs feature modules supervise (defineProgram); the config's `programs:` section adds more. */
export const programs: ProgramDef[] = [];
