/** Debian's Chromium driven by playwright-core, started the way this machine needs (no sandbox, no network chatter). */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

/** A fresh profile directory and a persistent context with one page. */
export async function launchChromium(opts: {
  viewport: { width: number; height: number };
  args?: string[];
  acceptDownloads?: boolean;
}): Promise<{ profile: string; context: BrowserContext; page: Page }> {
  const profile = mkdtempSync(join(tmpdir(), "ami-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...ARGS, ...(opts.args ?? [])],
    viewport: opts.viewport,
    acceptDownloads: opts.acceptDownloads,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return { profile, context, page };
}
