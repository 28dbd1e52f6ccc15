/**
 * config/ami-streams.example.yaml, assembled from its parts: the base sections (src/core/config.example.yaml), each
 * feature's section (its manifest's `configExample`), in the order of the feature list, then `programs:`.
 * `node scripts/docs.ts` writes it; tests check it is current and equals the defaults.
 */
import { readFileSync } from "node:fs";
import { features } from "../features.ts";

const header = `# ami-streams configuration. Every value below is the built-in default (a test checks this file equals
# defaultConfig()), so an empty file behaves exactly like this one. Generated from each feature's
# src/<feature>/config.example.yaml by \`node scripts/docs.ts\`: edit those, not this file.
# Location: --config FILE, else $AMI_STREAMS_CONFIG, else <home>/config.yaml. \`ami-streams config init\` writes
# this file there; \`ami-streams config validate\` checks one and names every bad key.
`;

const part = (url: URL) => readFileSync(url, "utf8").trimEnd();

export function renderExampleConfig(): string {
  const parts = [
    part(new URL("../core/config.example.yaml", import.meta.url)),
    ...features.flatMap((f) => (f.configExample ? [part(f.configExample)] : [])),
    part(new URL("../core/programs.example.yaml", import.meta.url)),
  ];
  return `${header}\n${parts.join("\n\n")}\n`;
}
