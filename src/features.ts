/**
 * The composition root: every capability's manifest, in one list. Config sections, supervised services and
 * programs, ops (CLI, MCP, control API), error codes and the monitor all come from here. Adding a capability is
 * its folder plus one line below.
 *
 * $AMI_STREAMS_FEATURES (paths of modules exporting `feature`, comma-separated) adds features kept outside this
 * tree: a site's own, or a test's (loaded synchronously, so the config schema sees them too).
 */
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { alertsFeature } from "./alerts/feature.ts";
import { backupFeature } from "./backup/feature.ts";
import { casFeature } from "./cas/feature.ts";
import { cdnFeature } from "./cdn/feature.ts";
import { controlFeature } from "./control/feature.ts";
import type { Feature } from "./core/feature.ts";
import { deployFeature } from "./deploy/feature.ts";
import { edgeFeature } from "./edge/feature.ts";
import { matrixFeature } from "./matrix/feature.ts";
import { mediaFeature } from "./media/feature.ts";
import { monitorFeature } from "./monitor/feature.ts";
import { p2pFeature } from "./p2p/feature.ts";
import { turnFeature } from "./turn/feature.ts";
import { webFeature } from "./web/feature.ts";

const builtIn = [
  controlFeature,
  matrixFeature,
  webFeature,
  mediaFeature,
  casFeature,
  turnFeature,
  backupFeature,
  monitorFeature,
  alertsFeature,
  cdnFeature,
  p2pFeature,
  edgeFeature,
  deployFeature,
] as const;

function extraFeatures(list = process.env.AMI_STREAMS_FEATURES): Feature[] {
  if (!list) return [];
  const require = createRequire(import.meta.url);
  return list
    .split(",")
    .filter(Boolean)
    .map((p) => {
      const m = require(resolve(p)) as { feature?: Feature };
      if (!m.feature?.name) throw new Error(`${p}: exports no \`feature\` (defineFeature)`);
      return m.feature;
    });
}

const extra = extraFeatures();
for (const f of extra) {
  if (builtIn.some((b) => b.name === f.name)) throw new Error(`feature ${f.name} is defined twice`);
}

/** Typed as the built-in list (the config's type comes from it); extra features are there at run time. */
export const features: typeof builtIn = [...builtIn, ...extra] as unknown as typeof builtIn;

export const findFeature = (name: string): Feature | undefined => features.find((f) => f.name === name);

const reserved = new Set(features.flatMap((f) => [f.name, ...f.commands, ...f.services.map((s) => s.name)]));

/** Names a config program may not take: features, their command words and their services. */
export const reservedNames = (): ReadonlySet<string> => reserved;

// A feature's program named like a command or service would shadow it (its own feature's name is its to take).
for (const f of features) {
  for (const p of f.programs) {
    if (p.name !== f.name && reservedNames().has(p.name))
      throw new Error(`program ${p.name} takes a feature, command or service name`);
  }
}
