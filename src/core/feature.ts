/**
 * What a capability is: one folder exporting one manifest (`src/<feature>/feature.ts`). The list of manifests in
 * src/features.ts is the composition root: it feeds the config schema (one section a feature), the supervisor (its
 * services and programs), the ops registry (CLI, MCP, control API), the error codes and, through the units, the
 * monitor. core/ defines the shape and knows no feature.
 */
import { z } from "zod";
import { AmiError, registerErrorCodes } from "./errors.ts";
import { defineOp, type OpDef } from "./ops.ts";
import type { ProgramDef } from "./program.ts";
import type { ServiceDef } from "./service.ts";

export interface Feature<N extends string = string, S extends z.ZodType | undefined = z.ZodType | undefined> {
  /** Also the key of its config section and (by convention) the first word of its commands. */
  name: N;
  summary: string;
  /** `built`, or `planned`: a promised capability whose ops exist and fail with AMI_NOT_BUILT (CLI exit 4). */
  status: "built" | "planned";
  /** Its config section: a strict zod object whose every key has a default (`{}` parses to the defaults). */
  config: S;
  /**
   * With a config section: its annotated YAML (the section key and every default, commented), a part of
   * config/ami-streams.example.yaml (`node scripts/docs.ts` assembles it; a test checks it equals the defaults).
   */
  configExample?: URL;
  /** Our Node services (`ami-streams serve <name>`), started by `up`. */
  services: readonly ServiceDef[];
  /** External programs it supervises (defineProgram). */
  programs: readonly ProgramDef[];
  /**
   * Its operations, loaded on first use: service processes never load ops (less to start, less resident memory).
   * Named `<feature>.*` or under one of `commands`.
   */
  ops(): Promise<readonly OpDef[]>;
  /** Top-level command words its ops use besides its name (e.g. media's `stream`); reserved from program names. */
  commands: readonly string[];
  /** Its own error codes and their HTTP statuses (`AMI_*`; Matrix's `M_*` are shared vocabulary in core). */
  errors: Readonly<Record<string, number>>;
}

type FeatureInput<N extends string, S extends z.ZodType | undefined> = Pick<Feature<N, S>, "name" | "summary"> &
  Partial<Omit<Feature<N, S>, "name" | "summary" | "config">> & { config?: S };

export function defineFeature<const N extends string, S extends z.ZodType | undefined = undefined>(
  f: FeatureInput<N, S>,
): Feature<N, S> {
  if (!/^[a-z][a-z0-9-]*$/.test(f.name)) throw new Error(`bad feature name ${f.name}`);
  const errors = f.errors ?? {};
  registerErrorCodes(errors);
  return {
    status: "built",
    services: [],
    programs: [],
    ops: async () => [],
    commands: [],
    ...f,
    config: f.config as S,
    errors,
  };
}

/** An op of a planned capability: a real target for shell functions and MCP tools that fails loudly. */
export function plannedOp(d: { name: string; summary: string; what: string; input: z.ZodObject }): OpDef {
  return defineOp({
    name: d.name,
    summary: `${d.summary} (NOT BUILT YET)`,
    input: d.input.strict(),
    output: z.object({}),
    annotations: { readOnly: false, destructive: false, idempotent: false, openWorld: true },
    run: async () => {
      throw new AmiError(
        "AMI_NOT_BUILT",
        `${d.what}: not built yet (planned in the seed's "Future Development"; no implementation exists in this version)`,
      );
    },
  });
}

/** A feature's section of the whole config, typed by its schema (for code that only knows its own feature). */
export function configSection<N extends string, S extends z.ZodType>(f: Feature<N, S>, config: object): z.output<S> {
  return (config as Record<string, unknown>)[f.name] as z.output<S>;
}
