/**
 * Browser proof for the chat client's conversation features: Debian's Chromium (playwright-core) runs the built
 * client as Alice against the real homeserver in a child process; Bob is matrix-js-sdk in Node with thread
 * support. Alice finds Bob through the user directory in the invite form (and starts a direct chat with him), they reply in a thread from both
 * sides (the threads panel lists it, the root shows the summary), Alice replies to a message, edits one
 * (still edited after a reload), toggles a reaction next to Bob's, searches with highlights and jumps to the
 * hit, and sees Bob's mention in the notifications list and as a browser notification while the tab is
 * hidden. What the browser sends is checked from Bob's side and through the server's /relations.
 *
 * The browser's Notification API is replaced by a recorder before the page loads (headless Chromium has no
 * notification UI to look at), and document.visibilityState is made switchable to play a hidden tab.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { MatrixClient, MatrixEvent } from "matrix-js-sdk";
import type { Locator, Page } from "playwright-core";
import type { RunningWebServer } from "../../src/web/server.ts";
import { launchChromium } from "./helpers/browser.ts";
import { enc, ok, registerUser, type Session, waitFor } from "./helpers/client.ts";
import { ChildHomeserver } from "./helpers/homeserver.ts";
import { serveChat, signIn, startPeer, tearDown } from "./helpers/web-chat.ts";

const PASSWORD = "correct horse battery";
const artifacts = fileURLToPath(new URL("../../test-artifacts/", import.meta.url));
const tag = () => randomBytes(3).toString("hex");

let hs: ChildHomeserver;
let web: RunningWebServer;
/** Alice's Chromium (its context, page and profile directory). */
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const pageErrors: string[] = [];
let alice: Session;
let bob: Session;
let bobClient: MatrixClient;
/** The room Alice creates, shared by the steps below. */
let roomId = "";
/** Bob's last reply in the thread (searched for later). */
let later = "";

/** An event in a room Bob sees (main timeline or a thread), once one matches. */
function bobSees(match: (e: MatrixEvent) => boolean, what: string): Promise<MatrixEvent> {
  return waitFor(what, () => {
    const room = bobClient.getRoom(roomId);
    const all = [
      ...(room?.getLiveTimeline().getEvents() ?? []),
      ...(room?.getThreads().flatMap((t) => t.events) ?? []),
    ];
    return all.find((e) => e.getId()?.startsWith("$") && match(e));
  });
}

/** The server's children of an event with one relation type, as Bob reads them (spec: /relations). */
async function relations(eventId: string, relType: string): Promise<any[]> {
  const path = `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(eventId)}/${enc(relType)}`;
  return (await ok(hs.url, "GET", path, { token: bob.accessToken })).chunk;
}

const log = () => page.getByRole("log", { name: "Messages in Team room" });
/** The timeline line holding a message text. */
const line = (scope: Locator, text: string) => scope.locator("li.msg", { hasText: text }).first();

async function screenshot(name: string): Promise<void> {
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, name) });
}

before(async () => {
  hs = await ChildHomeserver.start();
  web = await serveChat(hs.url);
  alice = await registerUser(hs.url, "alice", PASSWORD);
  bob = await registerUser(hs.url, "bob", PASSWORD);
  bobClient = await startPeer(hs.url, bob, { threadSupport: true });
  // Bob is in a public room, so the user directory lists him to Alice (who shares no room with him yet).
  await bobClient.createRoom({ name: "Lobby", preset: "public_chat" as any, visibility: "public" as any });

  browser = await launchChromium({ viewport: { width: 1280, height: 800 } });
  page = browser.page;
  await browser.context.addInitScript(() => {
    const w = window as any;
    w.__shown = [];
    w.__hidden = false;
    class RecordingNotification {
      static permission = "default";
      static async requestPermission() {
        RecordingNotification.permission = "granted";
        return "granted";
      }
      onclick: (() => void) | null = null;
      constructor(title: string, opts?: { body?: string }) {
        w.__shown.push({ title, body: opts?.body ?? "" });
      }
      close() {}
    }
    w.Notification = RecordingNotification;
    Object.defineProperty(document, "visibilityState", {
      configurable: true,
      get: () => (w.__hidden ? "hidden" : "visible"),
    });
  });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
});

after(async () => {
  await tearDown({ ...browser, peer: bobClient, web, hs });
});

test("Alice signs in, creates a room and invites Bob found through the user directory", async () => {
  await signIn(page, web.url, "alice", PASSWORD);
  await page.getByRole("button", { name: "New room" }).click();
  const dialog = page.getByRole("dialog", { name: "New room" });
  await dialog.getByLabel("Room name").fill("Team room");
  const encrypted = dialog.getByLabel(/End-to-end encrypted/);
  if (await encrypted.isChecked()) await encrypted.uncheck();
  await dialog.getByRole("button", { name: "Create room" }).click();
  await page.getByRole("heading", { name: "Team room" }).waitFor();

  await page.getByRole("button", { name: "Invite", exact: true }).click();
  const field = page.getByLabel("User to invite");
  await field.pressSequentially("bo");
  // Only what the directory answered can be picked: a partial name is not a user ID.
  const match = page.getByRole("list", { name: "Matching users" }).getByRole("button", { name: /@bob:localhost/ });
  await match.click();
  assert.equal(await field.inputValue(), bob.userId);
  await page.getByRole("button", { name: "Send invite" }).click();
  await page.getByText(`Invited ${bob.userId}.`).waitFor();
  roomId = await waitFor(
    "Bob joins the room",
    () => bobClient.getRooms().find((r) => r.name === "Team room" && r.getMyMembership() === "join")?.roomId,
  );
  await log().getByText("bob joined").waitFor();
});

test("a direct chat with someone found in the user directory", async () => {
  await page.getByRole("button", { name: "New room" }).click();
  const dialog = page.getByRole("dialog", { name: "New room" });
  await dialog.getByLabel("Or start a direct chat with").pressSequentially("bo");
  await dialog
    .getByRole("list", { name: "Matching users" })
    .getByRole("button", { name: /@bob:localhost/ })
    .click();
  await dialog.getByRole("button", { name: "Start chat" }).click();
  await dialog.waitFor({ state: "detached" });
  const dm = await waitFor("Bob joins the direct chat", () =>
    bobClient.getRooms().find((r) => r.getMyMembership() === "join" && r.getDMInviter() === alice.userId),
  );
  const direct = await ok(hs.url, "GET", `/_matrix/client/v3/user/${enc(alice.userId)}/account_data/m.direct`, {
    token: alice.accessToken,
  });
  assert.deepEqual(direct[bob.userId], [dm.roomId], "the room is in Alice's m.direct under Bob");
  await page.getByRole("button", { name: /^Team room/ }).click();
  await page.getByRole("heading", { name: "Team room" }).waitFor();
});

test("a thread with replies from both: the threads panel lists it, the root shows the summary", async () => {
  const rootText = `Shall we plan the launch? ${tag()}`;
  const { event_id: rootId } = await bobClient.sendTextMessage(roomId, rootText);
  const root = line(log(), rootText);
  await root.hover();
  await root.getByRole("button", { name: "Reply in thread" }).click();
  const panel = page.getByRole("complementary", { name: "Thread" });
  await panel.getByText(rootText).waitFor();
  const aliceReply = `Alice in the thread ${tag()}`;
  await panel.getByLabel("Thread reply").fill(aliceReply);
  await panel.getByLabel("Thread reply").press("Enter");

  const sent = await bobSees((e) => e.getContent().body === aliceReply, "Bob receives Alice's thread reply");
  assert.equal(sent.threadRootId, rootId, "Alice's reply went into the thread");
  const rel = await relations(rootId, "m.thread");
  assert.ok(
    rel.some((e) => e.content.body === aliceReply),
    "the server lists Alice's reply as a thread child of the root",
  );

  const bobReply = `Bob in the thread ${tag()}`;
  await bobClient.sendMessage(roomId, rootId, { msgtype: "m.text", body: bobReply } as any);
  const threadLog = panel.getByRole("log", { name: "Thread" });
  await threadLog.getByText(bobReply).waitFor();
  await threadLog.getByText(aliceReply).waitFor();
  // Thread replies stay in the thread: the room's timeline only carries the summary on the root.
  assert.equal(await log().getByText(aliceReply, { exact: true }).count(), 0);
  await root.getByRole("button", { name: "Open thread, 2 replies" }).waitFor();

  await panel.getByRole("button", { name: "← All threads" }).click();
  const list = page.getByRole("complementary", { name: "Threads" }).getByRole("list", { name: "Threads" });
  const item = list.getByRole("button", { name: /launch.*2 replies/ });
  await item.waitFor();
  assert.match((await item.textContent()) ?? "", new RegExp(`bob: ${bobReply}`));
  await screenshot("web-chat-threads.png");
  await item.click();
  await panel.getByText(bobReply).waitFor();

  // A new reply while Alice looks at the thread list: that thread is marked unread until she opens it.
  await panel.getByRole("button", { name: "← All threads" }).click();
  await list.getByRole("button", { name: /2 replies/ }).waitFor();
  later = `One more thing ${tag()}`;
  await bobClient.sendMessage(roomId, rootId, { msgtype: "m.text", body: later } as any);
  const unread = list.getByRole("button", { name: /1 unread.*3 replies/ });
  await unread.waitFor();
  await unread.click();
  await panel.getByText(later).waitFor();
  await panel.getByRole("button", { name: "← All threads" }).click();
  await list.getByRole("button", { name: /3 replies/ }).waitFor();
  await list.getByText("unread").waitFor({ state: "detached" });
  await page.getByRole("button", { name: "Close panel" }).click();
});

test("a reply quotes the message it answers; Bob receives m.in_reply_to", async () => {
  const question = `What time works? ${tag()}`;
  const { event_id } = await bobClient.sendTextMessage(roomId, question);
  const q = line(log(), question);
  await q.hover();
  await q.getByRole("button", { name: "Reply", exact: true }).click();
  await page.getByText(`Replying to bob: ${question}`).waitFor();
  const answer = `Noon works ${tag()}`;
  await page.getByLabel("Message", { exact: true }).fill(answer);
  await page.getByLabel("Message", { exact: true }).press("Enter");
  const e = await bobSees((x) => x.getContent().body === answer, "Bob receives the reply");
  assert.equal(e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id, event_id);
  const quote = line(log(), answer).locator("blockquote");
  await quote.getByText(question).waitFor();
  assert.equal(await page.getByText(/^Replying to/).count(), 0, "the reply banner is gone after sending");
});

test("an edit shows the new text marked edited, and still does after a reload", async () => {
  const typo = `Meeting at 3pm tomorow ${tag()}`;
  const fixed = typo.replace("tomorow", "tomorrow");
  await page.getByLabel("Message", { exact: true }).fill(typo);
  await page.getByLabel("Message", { exact: true }).press("Enter");
  const original = await bobSees((x) => x.getContent().body === typo, "Bob receives the message");
  const mine = line(log(), typo);
  await mine.hover();
  await mine.getByRole("button", { name: "Edit" }).click();
  const box = page.getByLabel("Message", { exact: true });
  // The composer is filled on the next render after the click: wait for it (up to 5 s), then assert.
  await waitFor("the composer to take the message's text", async () => (await box.inputValue()) !== "", 5_000).catch(
    () => {},
  );
  assert.equal(await box.inputValue(), typo, "editing starts from the current text");
  await box.fill(fixed);
  await box.press("Enter");
  const edited = line(log(), fixed);
  await edited.getByText("(edited)").waitFor();
  await log().getByText(typo).waitFor({ state: "detached" });

  const edits = await waitFor("the server relates the edit to the message", async () => {
    const r = await relations(original.getId()!, "m.replace");
    return r.length > 0 ? r : null;
  });
  assert.equal(edits[0].content["m.new_content"].body, fixed);
  await waitFor("Bob's client shows the edit", () => original.getContent().body === fixed);

  await page.reload();
  await page.getByRole("button", { name: /^Team room/ }).click();
  await line(log(), fixed).getByText("(edited)").waitFor();
  assert.equal(await log().getByText(typo).count(), 0, "the old text is gone after a reload");
  // Up in the empty box edits my last message (its newest text); Escape leaves it untouched.
  const again = page.getByLabel("Message", { exact: true });
  await again.press("ArrowUp");
  await page.getByText("Editing your message").waitFor();
  // As for the Edit button above: the composer takes the text on the render after the banner's.
  await waitFor("the composer to take the newest text", async () => (await again.inputValue()) !== "", 5_000).catch(
    () => {},
  );
  assert.equal(await again.inputValue(), fixed);
  await again.press("Escape");
  await page.getByText("Editing your message").waitFor({ state: "detached" });
  assert.equal(await again.inputValue(), "");
});

test("reactions aggregate per key; mine is highlighted and toggles off", async () => {
  const text = `Ship it on Friday ${tag()}`;
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByLabel("Message", { exact: true }).press("Enter");
  const target = await bobSees((x) => x.getContent().body === text, "Bob receives the message");
  await bobClient.sendEvent(
    roomId,
    "m.reaction" as any,
    {
      "m.relates_to": { rel_type: "m.annotation", event_id: target.getId()!, key: "👍" },
    } as any,
  );
  const msg = line(log(), text);
  const pill = msg.getByRole("button", { name: /^👍 1$/ });
  await pill.waitFor();
  assert.equal(await pill.getAttribute("aria-pressed"), "false");
  await pill.click();
  const both = msg.getByRole("button", { name: "👍 2, including you" });
  await both.waitFor();
  assert.equal(await both.getAttribute("aria-pressed"), "true");
  await waitFor("the server has both reactions", async () => {
    const r = await relations(target.getId()!, "m.annotation");
    return r.filter((e) => e.content["m.relates_to"].key === "👍").length === 2;
  });

  // A new reaction from the picker, then my 👍 taken back (a redaction).
  await msg.hover();
  await msg.getByRole("button", { name: "React", exact: true }).click();
  await msg.getByRole("button", { name: "React with 🎉" }).click();
  await msg.getByRole("button", { name: "🎉 1, including you" }).waitFor();
  await both.click();
  await msg.getByRole("button", { name: /^👍 1$/ }).waitFor();
  await waitFor("the server keeps only Bob's 👍", async () => {
    const r = await relations(target.getId()!, "m.annotation");
    const thumbs = r.filter((e) => e.content["m.relates_to"].key === "👍");
    return thumbs.length === 1 && thumbs[0].sender === bob.userId;
  });
});

test("message search finds a message with the word highlighted and jumps to it", async () => {
  const word = `zebra${tag()}`;
  await bobClient.sendTextMessage(roomId, `Has anyone seen the ${word} report?`);
  await log().getByText(word, { exact: false }).waitFor();
  await page.getByRole("button", { name: "Search", exact: true }).click();
  const panel = page.getByRole("complementary", { name: "Search" });
  await panel.getByLabel("Search for").fill(word);
  await panel.getByLabel("Search for").press("Enter");
  const results = panel.getByRole("list", { name: "Search results" });
  const mark = results.locator("mark").first();
  await mark.waitFor();
  assert.equal((await mark.textContent())?.toLowerCase(), word.toLowerCase());
  assert.match((await results.textContent()) ?? "", /Has anyone seen the/);

  // All rooms: the same hit, now labelled with its room.
  await panel.getByLabel("All rooms").check();
  await panel.getByRole("button", { name: "Search", exact: true }).click();
  await results.locator(".room-name", { hasText: "Team room" }).first().waitFor();

  await results.getByRole("button", { name: "Show in Team room" }).first().click();
  await log().locator("li.msg.focused", { hasText: word }).waitFor();
  await screenshot("web-chat-search.png");

  // A hit inside a thread opens that thread.
  const threadTag = later.split(" ").at(-1)!;
  await panel.getByLabel("Search for").fill(threadTag);
  await panel.getByRole("button", { name: "Search", exact: true }).click();
  await results.locator("mark", { hasText: threadTag }).waitFor();
  await results.getByRole("button", { name: "Show in Team room" }).first().click();
  const thread = page.getByRole("complementary", { name: "Thread" });
  await thread.getByRole("log", { name: "Thread" }).getByText(later).waitFor();
  await thread.getByRole("button", { name: "Close panel" }).click();
});

test("a mention: a browser notification while the tab is hidden, and in the notifications list", async () => {
  await page.getByRole("button", { name: "Notifications", exact: true }).click();
  await page.getByRole("button", { name: "Enable desktop notifications" }).click();
  await page.getByRole("button", { name: "Enable desktop notifications" }).waitFor({ state: "detached" });
  await page.evaluate(() => {
    (window as any).__hidden = true;
  });
  const text = `alice, can you review this? ${tag()}`;
  await bobClient.sendMessage(roomId, {
    msgtype: "m.text",
    body: text,
    "m.mentions": { user_ids: [alice.userId] },
  } as any);
  const shown = await waitFor("a browser notification", async () => {
    const list: { title: string; body: string }[] = await page.evaluate(() => (window as any).__shown);
    return list.find((n) => n.body.includes(text));
  });
  assert.equal(shown.title, "Team room");
  assert.equal(shown.body, `bob: ${text}`);
  await page.evaluate(() => {
    (window as any).__hidden = false;
  });

  const list = page.getByRole("list", { name: "Notifications list" });
  await waitFor("the mention in the notifications list", async () => {
    await page.getByRole("button", { name: "Refresh" }).click();
    return (await list.getByRole("button", { name: new RegExp(text.slice(0, 20)) }).count()) > 0;
  });
  const item = list.getByRole("button", { name: new RegExp(text.slice(0, 20)) });
  assert.match((await item.textContent()) ?? "", /mention/);
  await screenshot("web-chat-notifications.png");
  await item.click();
  await log().locator("li.msg.focused", { hasText: text }).waitFor();
  assert.deepEqual(pageErrors, [], "no uncaught errors in the page");
});
