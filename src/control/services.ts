/**
 * Every supervised service. Each becomes `ami-streams <name> start|stop|status|restart` and is started by `up`.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ServiceDef } from "../core/service.ts";
import { testHttpService } from "../test/http-service.ts";

// >>> MATRIX SERVICE IMPORT SPOT: replace with `import { matrixService } from "../matrix/service.ts";`
// once src/matrix/service.ts is committed. Until then it is loaded only if the file exists.
const matrixServiceUrl = new URL("../matrix/service.ts", import.meta.url);
const matrixServices: ServiceDef[] = existsSync(fileURLToPath(matrixServiceUrl))
  ? [(await import(matrixServiceUrl.href)).matrixService as ServiceDef]
  : [];
// <<<

/**
 * The small real HTTP service in src/test/ joins the list only when AMI_STREAMS_TEST_SERVICE_PORT is set,
 * so supervisor tests run without the homeserver (the variable is inherited by supervisor and children).
 */
export const services: ServiceDef[] = [
  ...matrixServices,
  ...(process.env.AMI_STREAMS_TEST_SERVICE_PORT ? [testHttpService] : []),
];

export const findService = (name: string): ServiceDef | undefined => services.find((s) => s.name === name);
