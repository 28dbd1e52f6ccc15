/**
 * What the browser tests of the chat client share: the built client served by the `web` service's server
 * next to a homeserver, a matrix-js-sdk peer that joins every room it is invited to (like a bot), signing in
 * through the login form, and tearing the browser down.
 */
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { ClientEvent, type IStartClientOpts, type MatrixClient, type Room, RoomEvent } from "matrix-js-sdk";
import type { BrowserContext, Page } from "playwright-core";
import { silentLogger } from "../../../src/core/logger.ts";
import { chatDist, ensureChatBuilt } from "../../../src/web/build.ts";
import { type RunningWebServer, startWebServer } from "../../../src/web/server.ts";
import { CHROMIUM } from "./browser.ts";
import { type Session, sdkClient } from "./client.ts";

/** Build the client if stale and serve it, configured for the homeserver at `homeserverUrl`. */
export async function serveChat(homeserverUrl: string): Promise<RunningWebServer> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
  await ensureChatBuilt(silentLogger);
  return startWebServer({
    host: "127.0.0.1",
    port: 0,
    root: chatDist,
    homeserverUrl: () => homeserverUrl,
    serverName: "localhost",
    log: silentLogger,
  });
}

/** A matrix-js-sdk peer, synced once, joining every room it is invited to. */
export async function startPeer(
  homeserverUrl: string,
  session: Session,
  opts: IStartClientOpts = {},
): Promise<MatrixClient> {
  const client = sdkClient(homeserverUrl, session);
  const ready = new Promise<void>((r) => client.once(ClientEvent.Sync, () => r()));
  await client.startClient({ initialSyncLimit: 50, ...opts });
  await ready;
  joinInvites(client);
  return client;
}

/** The peer accepts every invite as it arrives. */
export function joinInvites(client: MatrixClient): void {
  client.on(RoomEvent.MyMembership, (room: Room, membership: string) => {
    if (membership === "invite") client.joinRoom(room.roomId).catch(() => {});
  });
}

/** Open the client and sign in with the login form; resolves once the room list is up. */
export async function signIn(page: Page, url: string, user: string, password: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "New room" }).waitFor();
}

/** Close whatever a test started (any part may be missing when `before` failed half way). */
export async function tearDown(parts: {
  context?: BrowserContext;
  profile?: string;
  peer?: MatrixClient;
  web?: RunningWebServer;
  hs?: { dispose(): Promise<void> };
}): Promise<void> {
  await parts.context?.close().catch(() => {});
  parts.peer?.stopClient();
  await parts.web?.close();
  await parts.hs?.dispose();
  if (parts.profile) rmSync(parts.profile, { recursive: true, force: true });
}
