/**
 * Browser proof for the web chat client: Debian's Chromium, driven by playwright-core, uses the built client
 * (served by the `web` service's server) against the real homeserver in a child process, while Bob uses
 * matrix-js-sdk in Node. Alice logs in, creates a room inviting Bob, and they exchange messages, a file both
 * ways (intact bytes), an image, typing, read receipts and unread counts; a reload resumes the session and
 * scrollback loads history. Screenshots at desktop and phone sizes go to test-artifacts/.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { crc32, deflateSync } from "node:zlib";
import type { MatrixClient, MatrixEvent } from "matrix-js-sdk";
import type { BrowserContext, Page } from "playwright-core";
import type { RunningWebServer } from "../../src/web/server.ts";
import { launchChromium } from "./helpers/browser.ts";
import { registerUser, type Session, waitFor } from "./helpers/client.ts";
import { ChildHomeserver } from "./helpers/homeserver.ts";
import { serveChat, startPeer, tearDown } from "./helpers/web-chat.ts";

const PASSWORD = "correct horse battery";
const artifacts = fileURLToPath(new URL("../../test-artifacts/", import.meta.url));

let hs: ChildHomeserver;
let web: RunningWebServer;
let context: BrowserContext;
let page: Page;
let profile: string;
let alice: Session;
let bob: Session;
let bobClient: MatrixClient;
let roomId = "";
const pageErrors: string[] = [];

/** A valid RGB PNG of one colour, built by hand so the test needs no image library. */
function png(width: number, height: number, rgb: [number, number, number]): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: width }, () => rgb).flat())]);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** The messages of a room Bob sees, once one matches. */
function bobSees(room: string, match: (e: MatrixEvent) => boolean, what: string): Promise<MatrixEvent> {
  return waitFor(what, () =>
    bobClient
      .getRoom(room)
      ?.getLiveTimeline()
      .getEvents()
      .find((e) => e.getType() === "m.room.message" && e.getId()?.startsWith("$") && match(e)),
  );
}

async function bobDownload(mxc: string): Promise<Uint8Array> {
  const url = bobClient.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, true)!;
  const r = await fetch(url, { headers: { Authorization: `Bearer ${bob.accessToken}` } });
  assert.equal(r.status, 200, `download ${mxc}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function screenshot(name: string): Promise<string> {
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, name);
  await page.screenshot({ path });
  return path;
}

before(async () => {
  hs = await ChildHomeserver.start();
  web = await serveChat(hs.url);
  alice = await registerUser(hs.url, "alice", PASSWORD);
  bob = await registerUser(hs.url, "bob", PASSWORD);
  bobClient = await startPeer(hs.url, bob);

  ({ profile, context, page } = await launchChromium({
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
  }));
  page.on("pageerror", (e) => pageErrors.push(String(e)));
});

after(async () => {
  await tearDown({ context, profile, peer: bobClient, web, hs });
});

test("logs in with the homeserver URL prefilled from /config.json", async () => {
  await page.goto(web.url);
  const homeserver = page.getByLabel("Homeserver");
  await homeserver.waitFor();
  assert.equal(await homeserver.inputValue(), hs.url);
  await page.getByLabel("User name").fill("alice");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "New room" }).waitFor();
  assert.match((await page.locator(".me").textContent()) ?? "", /@alice:localhost/);
});

test("creates a room inviting Bob; a message typed in the browser reaches matrix-js-sdk", async () => {
  await page.getByRole("button", { name: "New room" }).click();
  const dialog = page.getByRole("dialog", { name: "New room" });
  await dialog.getByLabel("Room name").fill("Web room");
  await dialog.getByLabel("Invite (user IDs, comma separated)").fill(bob.userId);
  // Bob here has no crypto: this room is a plain one (the encrypted one is in web-chat-e2ee.test.ts).
  const encrypted = dialog.getByLabel(/End-to-end encrypted/);
  if (await encrypted.isChecked()) await encrypted.uncheck();
  await dialog.getByRole("button", { name: "Create room" }).click();
  await page.getByRole("heading", { name: "Web room" }).waitFor();
  roomId = await waitFor(
    "Bob joins the room",
    () => bobClient.getRooms().find((r) => r.name === "Web room" && r.getMyMembership() === "join")?.roomId,
  );
  const text = `hello from the browser ${randomBytes(4).toString("hex")}`;
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByLabel("Message", { exact: true }).press("Enter");
  const e = await bobSees(roomId, (x) => x.getContent().body === text, "Bob receives the browser's message");
  assert.equal(e.getSender(), alice.userId);
});

test("a message from matrix-js-sdk shows in the browser; Bob's typing shows; Alice's read receipt reaches Bob", async () => {
  const text = `hello from node ${randomBytes(4).toString("hex")}`;
  const { event_id } = await bobClient.sendTextMessage(roomId, text);
  const log = page.getByRole("log", { name: "Messages in Web room" });
  await log.getByText(text).waitFor();
  await bobClient.sendTyping(roomId, true, 20_000);
  await page.getByText("bob is typing…").waitFor();
  await bobClient.sendTyping(roomId, false, 0);
  await page.getByText("bob is typing…").waitFor({ state: "detached" });
  await waitFor("Alice's read receipt for Bob's message", () => {
    const room = bobClient.getRoom(roomId)!;
    const ev = room.findEventById(event_id);
    return ev && room.getUsersReadUpTo(ev).includes(alice.userId);
  });
});

test("a file uploaded in the browser downloads intact in Node; a file and an image from Node come back intact", async () => {
  const bytes = randomBytes(200_000);
  await page
    .getByLabel("Attach files")
    .setInputFiles({ name: "data.bin", mimeType: "application/octet-stream", buffer: bytes });
  const e = await bobSees(roomId, (x) => x.getContent().body === "data.bin", "Bob sees the uploaded file");
  assert.equal(e.getContent().msgtype, "m.file");
  assert.equal(e.getContent().info.size, bytes.length);
  assert.equal(
    sha(await bobDownload(e.getContent().url)),
    sha(bytes),
    "the file Bob downloads is what the browser sent",
  );

  // Node → browser: the download button fetches with the access token and saves the same bytes.
  const notes = Buffer.from(`notes ${randomBytes(8).toString("hex")}\n`.repeat(100));
  const up = await bobClient.uploadContent(new Uint8Array(notes), { name: "notes.txt", type: "text/plain" });
  await bobClient.sendMessage(roomId, {
    msgtype: "m.file",
    body: "notes.txt",
    url: up.content_uri,
    info: { mimetype: "text/plain", size: notes.length },
  } as any);
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: /Download notes\.txt/ }).click(),
  ]);
  assert.equal(download.suggestedFilename(), "notes.txt");
  assert.equal(sha(readFileSync(await download.path())), sha(notes));

  const image = png(48, 32, [200, 30, 30]);
  const img = await bobClient.uploadContent(new Uint8Array(image), { name: "red.png", type: "image/png" });
  await bobClient.sendMessage(roomId, {
    msgtype: "m.image",
    body: "red.png",
    url: img.content_uri,
    info: { mimetype: "image/png", size: image.length, w: 48, h: 32 },
  } as any);
  const shown = page.getByRole("img", { name: "red.png" });
  await shown.waitFor();
  await page.waitForFunction(() => {
    const el = document.querySelector<HTMLImageElement>('img[alt="red.png"]');
    return !!el && el.complete && el.naturalWidth === 48 && el.src.startsWith("blob:");
  });
});

test("unread counts for another room; a reload resumes the session; scrollback loads the start of history", async () => {
  const side = await bobClient.createRoom({ name: "Side room", invite: [alice.userId] });
  await page.getByRole("button", { name: "Accept invite to Side room" }).click();
  await page.getByRole("heading", { name: "Side room" }).waitFor();
  await page.getByRole("button", { name: /^Web room/ }).click();
  await page.getByRole("heading", { name: "Web room" }).waitFor();
  for (let i = 1; i <= 45; i++) await bobClient.sendTextMessage(side.room_id, `side ${i}`);
  await page.getByRole("button", { name: /^Side room.*45 unread/ }).waitFor();
  await screenshot("web-chat-desktop.png");

  // The session survives a reload (token in localStorage); the first sync brings only the latest 30 events.
  await page.reload();
  await page.getByRole("button", { name: /^Side room/ }).click();
  const log = page.getByRole("log", { name: "Messages in Side room" });
  await log.getByText("side 45", { exact: true }).waitFor();
  assert.equal(await log.getByText("side 1", { exact: true }).count(), 0, "the first message needs scrollback");
  // Scrolling to the top loads older history (each page keeps the reader's place, so scroll up again).
  for (let i = 0; i < 40 && (await log.getByText("side 1", { exact: true }).count()) === 0; i++) {
    await log.evaluate((el) => {
      el.scrollTop = 0;
    });
    await page.waitForTimeout(250);
  }
  await log.getByText("side 1", { exact: true }).waitFor();
  await log.getByText("This is the start of the room.").waitFor();
  await page.getByRole("button", { name: /^Side room.*unread/ }).waitFor({ state: "detached" });
});

test("phone-sized screen: one pane at a time, back button returns to the list", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole("button", { name: "Back to room list" }).click();
  await page.getByRole("navigation", { name: "Room list" }).waitFor();
  assert.equal(await page.getByRole("log").count(), 0, "the room pane is hidden on a phone while the list shows");
  await screenshot("web-chat-phone-list.png");
  await page.getByRole("button", { name: /^Web room/ }).click();
  await page.getByRole("log", { name: "Messages in Web room" }).waitFor();
  assert.equal(await page.getByRole("navigation", { name: "Room list" }).isVisible(), false);
  await screenshot("web-chat-phone-room.png");
  assert.deepEqual(pageErrors, [], "no uncaught errors in the page");
});
