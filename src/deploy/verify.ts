/** `systemd-analyze verify` on a generated unit, when systemd's tools are installed. */
import { spawnSync } from "node:child_process";

export interface UnitCheck {
  tool: string | null;
  ok: boolean;
  output: string;
}

export function verifyUnit(file: string): UnitCheck {
  // --man=no: the Documentation= check would need man pages; the unit is checked, not its references.
  const r = spawnSync("systemd-analyze", ["verify", "--man=no", file], { encoding: "utf8", timeout: 60_000 });
  if (r.error) return { tool: null, ok: false, output: "systemd-analyze is not installed here (Debian: systemd)" };
  const output = `${r.stderr}${r.stdout}`.trim();
  return { tool: "systemd-analyze verify", ok: r.status === 0 && output === "", output };
}

/** systemd's own rating of the unit's sandbox (`systemd-analyze security --offline=true`): 0.0 best, 10.0 worst. */
export function securityExposure(file: string): number | null {
  const r = spawnSync("systemd-analyze", ["security", "--offline=true", "--no-pager", file], {
    encoding: "utf8",
    timeout: 60_000,
  });
  const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(`${r.stdout}${r.stderr}`);
  return m ? Number(m[1]) : null;
}
