/** Debian's Chromium driven by playwright-core, started the way this machine needs (no sandbox, no network chatter). */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

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

/**
 * One browser for several independent viewers: each `browser.newContext()` is its own profile in memory (its own
 * HTTP cache and storage), so viewers do not answer each other's requests from a shared cache.
 */
export function launchBrowser(args: string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...ARGS, ...args] });
}

/** A WHEP viewer in a page, as `installWhepViewer` makes it. */
export interface PageWhepViewer {
  pc: RTCPeerConnection;
  video: HTMLVideoElement;
  /** The session URL (Location of the 201). */
  session: string;
}

declare global {
  interface Window {
    amiWhep?: (url: string) => Promise<PageWhepViewer>;
  }
}

/**
 * Defines `window.amiWhep(url)` in the page: a WHEP viewer the way the player page makes one (recvonly video and
 * audio, non-trickle: ICE gathered, at most 2 s, before the offer is posted), shown in a muted autoplaying <video>.
 */
export async function installWhepViewer(page: Page): Promise<void> {
  await page.evaluate(() => {
    window.amiWhep = async (url: string) => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      const video = document.createElement("video");
      video.muted = true;
      video.autoplay = true;
      document.body.append(video);
      pc.ontrack = (e) => {
        if (video.srcObject !== e.streams[0]) video.srcObject = e.streams[0] ?? null;
      };
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise<void>((r) => {
        if (pc.iceGatheringState === "complete") return r();
        pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r());
        setTimeout(r, 2000);
      });
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: pc.localDescription?.sdp,
      });
      if (res.status !== 201) throw new Error(`WHEP answered ${res.status}: ${await res.text()}`);
      const session = res.headers.get("location") ?? "";
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
      return { pc, video, session };
    };
  });
}
