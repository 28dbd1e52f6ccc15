/**
 * Collects the operations of the features into one registry: the CLI, the MCP server and the control API are
 * generated from it. Each feature's ops load on first use; `<unit> start|stop|status|restart` ops are generated
 * for every supervised unit and belong to the feature that owns it (the config's own programs: to control).
 */
import type { Config } from "../config.ts";
import { AmiError } from "../core/errors.ts";
import { OpRegistry } from "../core/ops.ts";
import { features } from "../features.ts";
import { serviceOps } from "./ops/service-ops.ts";
import { peekConfig, type Unit, units } from "./units.ts";

export const featureNames = (): string[] => features.map((f) => f.name);

/** The feature a unit belongs to: the one listing it as a service or program; else control (config programs). */
function ownerOf(u: Unit): string {
  const f = features.find(
    (x) => x.services.some((s) => s.name === u.name) || x.programs.some((p) => p.name === u.name),
  );
  return f?.name ?? "control";
}

/**
 * `only`: just these features' ops (MCP's `--feature`: an agent's tool budget is limited). `config` decides which
 * external programs get `<name> start|stop|...` ops (default: the config file in effect).
 */
export async function loadRegistry(config: Config = peekConfig(), only?: readonly string[]): Promise<OpRegistry> {
  const unknown = (only ?? []).filter((n) => !features.some((f) => f.name === n));
  if (unknown.length > 0)
    throw new AmiError(
      "AMI_INVALID_INPUT",
      `unknown feature(s): ${unknown.join(", ")} (known: ${featureNames().join(", ")})`,
    );
  const picked = (name: string) => !only || only.includes(name);
  const registry = new OpRegistry();
  for (const ops of await Promise.all(features.filter((f) => picked(f.name)).map((f) => f.ops()))) registry.add(...ops);
  const all = units(config).filter((u) => picked(ownerOf(u)));
  // Instances (deployed edge nodes...) come and go at run time: their feature's own ops manage them.
  registry.add(...all.filter((u) => u.kind === "service" && !u.instanceOf).flatMap(serviceOps));
  // A program named like a command that exists is still supervised (up, down, status); it just gets no second one.
  for (const op of all.filter((u) => u.kind === "program").flatMap(serviceOps)) {
    if (!registry.get(op.name)) registry.add(op);
  }
  return registry;
}
