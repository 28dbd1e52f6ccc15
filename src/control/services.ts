/**
 * Every supervised service and feature program, from the feature manifests. Each service becomes
 * `ami-streams <name> start|stop|status|restart` and is started by `up`.
 */
import type { ProgramDef } from "../core/program.ts";
import type { ServiceDef } from "../core/service.ts";
import { features } from "../features.ts";

export const services: ServiceDef[] = features.flatMap((f) => f.services);

export const findService = (name: string): ServiceDef | undefined => services.find((s) => s.name === name);

/** External programs feature modules supervise (defineProgram); the config's `programs:` section adds more. */
export const programs: ProgramDef[] = features.flatMap((f) => f.programs);
