/**
 * A WHEP viewer in a Chromium page (the player page's way: recvonly video + audio, non-trickle, shown in a <video>)
 * and what its video decodes, from `getStats`: for the WebRTC tests that check a stream plays at full rate.
 */
import type { Page } from "playwright-core";
import { installWhepViewer } from "./browser.ts";
import { until } from "./media-tools.ts";

/** Starts a viewer of `whepUrl` in the page; its peer connection and session are kept on `window`. */
export async function playWhep(page: Page, whepUrl: string): Promise<void> {
  await installWhepViewer(page);
  await page.evaluate(async (url) => {
    const w = window as unknown as { pc?: RTCPeerConnection; session?: string };
    const viewer = await window.amiWhep?.(url);
    w.pc = viewer?.pc;
    w.session = viewer?.session;
  }, whepUrl);
}

/** Frames decoded (inbound video RTP stats) and the time of that report. */
export const decodedVideo = (page: Page) =>
  page.evaluate(async () => {
    const pc = (window as unknown as { pc: RTCPeerConnection }).pc;
    let frames = 0;
    let ms = 0;
    let detail = "";
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") {
        frames = r.framesDecoded ?? 0;
        ms = r.timestamp;
        detail = `received ${r.framesReceived}, dropped ${r.framesDropped}, keyframes ${r.keyFramesDecoded}, packets lost ${r.packetsLost}, NACKs ${r.nackCount}, PLIs ${r.pliCount}, freezes ${r.freezeCount}`;
      }
    });
    return { frames, ms, detail };
  });

/** Keyframes the page's viewer decoded and the PLIs and FIRs it sent (inbound video RTP stats). */
export const keyframeStats = (page: Page) =>
  page.evaluate(async () => {
    const pc = (window as unknown as { pc: RTCPeerConnection }).pc;
    let out = { frames: 0, keyframes: 0, plis: 0, firs: 0 };
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video")
        out = {
          frames: r.framesDecoded ?? 0,
          keyframes: r.keyFramesDecoded ?? 0,
          plis: r.pliCount ?? 0,
          firs: r.firCount ?? 0,
        };
    });
    return out;
  });

/** Decoded frames per second over `ms` (at least 5 s), from a second after the first decoded frame (startup aside). */
export async function decodeRate(page: Page, ms = 6000): Promise<{ fps: number; detail: string }> {
  await until("the first decoded frames", async () => (await decodedVideo(page)).frames > 0);
  await new Promise((r) => setTimeout(r, 1000));
  const a = await decodedVideo(page);
  await new Promise((r) => setTimeout(r, ms));
  const b = await decodedVideo(page);
  return {
    fps: ((b.frames - a.frames) * 1000) / (b.ms - a.ms),
    detail: `at the start: ${a.detail}; at the end: ${b.detail}`,
  };
}

/** Closes the page's viewer and ends its WHEP session (DELETE on the session URL, relative to `baseUrl`). */
export async function leaveWhep(page: Page, baseUrl: string): Promise<number> {
  const session = await page.evaluate(async () => {
    const w = window as unknown as { pc: RTCPeerConnection; session: string };
    w.pc.close();
    document.querySelector("video")?.remove();
    return w.session;
  });
  return (await fetch(baseUrl + session, { method: "DELETE" })).status;
}

export const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
