/**
 * The agent SDK: a service or agent logs in to a Matrix homeserver and sends and receives end-to-end
 * encrypted messages through matrix-js-sdk and its Rust crypto (matrix-sdk-crypto-wasm).
 *
 *   const agent = await createAgent({ homeserverUrl, username: "bot", password, storeDir: "./bot-store" });
 *   agent.on("message", (m) => console.log(m.sender, m.body));
 *   await agent.send("!room:server", "hello", { encrypted: true });
 *   await agent.stop();
 *
 * Node has no IndexedDB, which is all the Rust crypto store and the sync store speak, so they run on
 * fake-indexeddb and are snapshotted to <storeDir>/store.v8 (after syncs and sends, debounced, and on stop)
 * and restored before the crypto starts: a restart keeps the device ID, identity keys and Megolm sessions.
 */
import { createHash } from "node:crypto";
import { EventEmitter, on } from "node:events";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  ClientEvent,
  createClient,
  Direction,
  IndexedDBStore,
  type MatrixClient,
  MatrixEvent,
  MatrixEventEvent,
  type Room,
  RoomEvent,
  SyncState,
} from "matrix-js-sdk";
import { AmiError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { deleteDatabases, readSnapshotFile, restoreDatabases } from "./idb-snapshot.ts";
import { indexedDBFactory, Persistence } from "./persistence.ts";
import { quietSdkRootLogger, sdkLogger } from "./sdk-log.ts";
import { type Credentials, lockStore, readSession, resolveSession, writeSession } from "./session.ts";

export interface AgentOptions extends Credentials {
  /** Directory for the session (token, device ID) and the crypto store; created with mode 0700. */
  storeDir: string;
  /** Also deliver the agent's own messages to `on("message")` (default false). */
  includeOwn?: boolean;
  /** Quiet period before a snapshot of the stores is written after a change (default 1000 ms). */
  saveDelayMs?: number;
  /** How long to wait for the first sync, and for another process holding storeDir (default 60 s). */
  startTimeoutMs?: number;
  log?: Logger;
}

export interface AgentMessage {
  roomId: string;
  eventId: string;
  sender: string;
  ts: number;
  msgtype: string | null;
  body: string | null;
  content: Record<string, unknown>;
  /** Sent as m.room.encrypted (and decrypted here). */
  encrypted: boolean;
  /** Encrypted, and no key to decrypt it (history() only; live messages wait for their key). */
  undecryptable?: boolean;
}

export interface SendOptions {
  /** true: refuse unless the room is encrypted; false: refuse if it is. Default: whatever the room is. */
  encrypted?: boolean;
  msgtype?: "m.text" | "m.notice" | "m.emote";
}

export interface CreateRoomOptions {
  name?: string;
  topic?: string;
  invite?: string[];
  /** Enable Megolm encryption from the first event (default true). */
  encrypted?: boolean;
}

type AgentEvents = { message: [AgentMessage]; stopped: [] };

const SEEN_MAX = 10_000;

export class Agent extends EventEmitter<AgentEvents> {
  readonly userId: string;
  readonly deviceId: string;
  /** The underlying matrix-js-sdk client, for anything the agent API does not cover. */
  readonly client: MatrixClient;
  #stopped = false;
  #live: boolean;
  readonly #seen = new Set<string>();
  readonly #pending = new Set<string>();
  readonly #includeOwn: boolean;
  readonly #persist: Persistence;
  /** Messages that arrive before createAgent() has returned wait here for the caller's listeners. */
  #backlog: AgentMessage[] | null = [];

  constructor(client: MatrixClient, persist: Persistence, opts: { resumed: boolean; includeOwn: boolean }) {
    super();
    this.client = client;
    this.userId = client.getSafeUserId();
    this.deviceId = client.getDeviceId() ?? "";
    this.#persist = persist;
    this.#includeOwn = opts.includeOwn;
    // On a fresh store the first sync's timeline is history, not news; a resumed store syncs from its token.
    this.#live = opts.resumed;
    client.on(RoomEvent.Timeline, (ev, _room, toStart, removed, data) => {
      if (this.#live && !toStart && !removed && data.liveEvent) this.#consider(ev);
    });
    client.on(MatrixEventEvent.Decrypted, (ev) => {
      if (this.#pending.has(ev.getId() ?? "")) this.#consider(ev);
    });
    client.on(ClientEvent.Sync, (state) => {
      if (state === SyncState.Syncing || state === SyncState.Prepared) persist.schedule();
    });
  }

  /** Called once the first sync is processed. */
  goLive(): void {
    this.#live = true;
  }

  #consider(ev: MatrixEvent): void {
    const id = ev.getId();
    if (!id || this.#seen.has(id)) return;
    // Not decrypted yet, or its key has not arrived: the Decrypted event brings it back here.
    if (ev.isBeingDecrypted() || ev.shouldAttemptDecryption() || ev.isDecryptionFailure()) {
      if (this.#pending.size < SEEN_MAX) this.#pending.add(id);
      return;
    }
    this.#pending.delete(id);
    if (ev.getType() !== "m.room.message") return;
    if (!this.#includeOwn && ev.getSender() === this.userId) return;
    this.#seen.add(id);
    if (this.#seen.size > SEEN_MAX) this.#seen.delete(this.#seen.values().next().value as string);
    const m = toMessage(ev);
    if (this.#backlog) this.#backlog.push(m);
    else this.emit("message", m);
  }

  /** Deliver the backlog: after the caller's `await createAgent()` continuation has attached its listeners. */
  flushBacklog(): void {
    const b = this.#backlog ?? [];
    this.#backlog = null;
    for (const m of b) this.emit("message", m);
  }

  /** Decrypted messages as they arrive, until stop() (or the loop breaks). */
  messages(): AsyncIterableIterator<AgentMessage> {
    const it = on(this, "message", { close: ["stopped"] }) as AsyncIterableIterator<[AgentMessage]>;
    return {
      next: async () => {
        const r = await it.next();
        return r.done ? r : { done: false, value: r.value[0] };
      },
      return: async () => {
        await it.return?.();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /** Curve25519 and Ed25519 identity keys of this device (they survive restarts). */
  async identityKeys(): Promise<{ curve25519: string; ed25519: string }> {
    return (await this.#crypto().getOwnDeviceKeys()) as { curve25519: string; ed25519: string };
  }

  #crypto() {
    const c = this.client.getCrypto();
    if (!c) throw new AmiError("AMI_INTERNAL", "crypto is not initialised");
    return c;
  }

  async #roomId(room: string): Promise<string> {
    if (room.startsWith("!")) return room;
    if (!room.startsWith("#"))
      throw new AmiError("AMI_INVALID_INPUT", `'${room}' is neither a room ID (!...) nor an alias (#...)`);
    return (await this.client.getRoomIdForAlias(room)).room_id;
  }

  /** Wait until the sync has delivered the room with us joined and its state (encryption included). */
  async #synced(roomId: string, wantEncryption = false, timeoutMs = 30_000): Promise<Room> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const room = this.client.getRoom(roomId);
      // Crypto learns a room's m.room.encryption asynchronously after the state lands; sending before that fails.
      if (
        room?.getMyMembership() === "join" &&
        room.currentState.getStateEvents("m.room.create", "") &&
        (!wantEncryption || room.hasEncryptionStateEvent()) &&
        (!room.hasEncryptionStateEvent() || (await this.#crypto().isEncryptionEnabledInRoom(roomId)))
      )
        return room;
      if (this.#stopped) throw new AmiError("AMI_UNAVAILABLE", "the agent is stopped");
      if (Date.now() > end) throw new AmiError("AMI_TIMEOUT", `room ${roomId} did not sync as joined`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Join a room by ID or alias (accepting an invite too); resolves once it has synced. */
  async joinRoom(room: string): Promise<string> {
    const roomId = await this.#roomId(room);
    if (this.client.getRoom(roomId)?.getMyMembership() !== "join") await this.client.joinRoom(room);
    await this.#synced(roomId);
    return roomId;
  }

  async createRoom(o: CreateRoomOptions = {}): Promise<string> {
    const { room_id } = await this.client.createRoom({
      ...(o.name !== undefined ? { name: o.name } : {}),
      ...(o.topic !== undefined ? { topic: o.topic } : {}),
      invite: o.invite ?? [],
      initial_state:
        o.encrypted === false
          ? []
          : [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    // A sync can land between the events of a new room: wait for the encryption state itself.
    await this.#synced(room_id, o.encrypted !== false);
    return room_id;
  }

  /** Whether the room (joined and synced) has end-to-end encryption on. */
  async isEncrypted(room: string): Promise<boolean> {
    return (await this.#synced(await this.#roomId(room))).hasEncryptionStateEvent();
  }

  /** Send a text message (encrypted when the room is); joins the room first if needed. */
  async send(room: string, text: string, o: SendOptions = {}): Promise<{ roomId: string; eventId: string }> {
    const roomId = await this.joinRoom(room);
    const encrypted = (await this.#synced(roomId)).hasEncryptionStateEvent();
    if (o.encrypted === true && !encrypted)
      throw new AmiError("AMI_INVALID_INPUT", `room ${roomId} is not encrypted; create it encrypted to send encrypted`);
    if (o.encrypted === false && encrypted)
      throw new AmiError("AMI_INVALID_INPUT", `room ${roomId} is encrypted; plaintext is not sent there`);
    const r = await this.client.sendMessage(roomId, { msgtype: o.msgtype ?? "m.text", body: text } as any);
    this.#persist.schedule();
    return { roomId, eventId: r.event_id };
  }

  /** The room's latest `limit` messages, oldest first, decrypted with the keys this device holds. */
  async history(room: string, limit = 20): Promise<AgentMessage[]> {
    const roomId = await this.#roomId(room);
    const res = await this.client.createMessagesRequest(roomId, null, limit, Direction.Backward);
    const events = res.chunk.map((raw) => new MatrixEvent({ ...raw, room_id: roomId }));
    await Promise.all(events.map((e) => this.client.decryptEventIfNeeded(e)));
    return events
      .filter((e) => e.getType() === "m.room.message" || e.isDecryptionFailure())
      .map(toMessage)
      .reverse();
  }

  /** Write the stores' snapshot now. */
  save(): Promise<void> {
    return this.#persist.save();
  }

  /** Stop syncing, write the final snapshot and release storeDir. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.client.stopClient();
    this.emit("stopped");
    await this.#persist.close();
  }
}

function toMessage(ev: MatrixEvent): AgentMessage {
  const content = ev.getContent() as Record<string, unknown>;
  const failed = ev.isDecryptionFailure();
  return {
    roomId: ev.getRoomId() ?? "",
    eventId: ev.getId() ?? "",
    sender: ev.getSender() ?? "",
    ts: ev.getTs(),
    msgtype: !failed && typeof content.msgtype === "string" ? content.msgtype : null,
    body: !failed && typeof content.body === "string" ? content.body : null,
    content: failed ? {} : content,
    encrypted: ev.isEncrypted(),
    ...(failed ? { undecryptable: true } : {}),
  };
}

/** Log in (or resume the stored session), restore the crypto store, start syncing; resolves after the first sync. */
export async function createAgent(opts: AgentOptions): Promise<Agent> {
  const dir = resolve(opts.storeDir);
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  const release = await lockStore(dir, timeoutMs);
  let client: MatrixClient | undefined;
  let store: IndexedDBStore | undefined;
  try {
    quietSdkRootLogger();
    const file = join(dir, "store.v8");
    const stored = readSession(dir);
    const snap = existsSync(file) ? readSnapshotFile(file) : null;
    const creds = { ...opts, homeserverUrl: opts.homeserverUrl.replace(/\/$/, "") };
    const session = await resolveSession(creds, stored, snap !== null);
    writeSession(dir, session);
    // Database names unique per store directory, so several agents can share one process.
    const prefix = `ami-agent-${createHash("sha256").update(dir).digest("hex").slice(0, 16)}`;
    const prefixes = [`${prefix}-sync`, `${prefix}-crypto`];
    const factory = await indexedDBFactory();
    await deleteDatabases(factory, prefix);
    const sameDevice = stored?.userId === session.userId && stored.deviceId === session.deviceId;
    if (snap && sameDevice) await restoreDatabases(factory, snap);

    store = new IndexedDBStore({ indexedDB: factory, dbName: prefixes[0] });
    client = createClient({
      baseUrl: session.homeserverUrl,
      userId: session.userId,
      deviceId: session.deviceId,
      accessToken: session.accessToken,
      store,
      logger: sdkLogger(opts.log),
    });
    await store.startup();
    await client.initRustCrypto({ cryptoDatabasePrefix: prefixes[1] });
    const resumed = (await store.getSavedSyncToken()) !== null;
    const persist = new Persistence({
      factory,
      store,
      prefixes,
      file,
      delayMs: opts.saveDelayMs ?? 1000,
      release,
      log: opts.log,
    });
    const agent = new Agent(client, persist, { resumed, includeOwn: opts.includeOwn ?? false });
    await firstSync(client, timeoutMs);
    agent.goLive();
    await persist.save();
    setImmediate(() => agent.flushBacklog());
    return agent;
  } catch (e) {
    client?.stopClient();
    await store?.destroy().catch(() => {});
    release();
    throw e;
  }
}

function firstSync(client: MatrixClient, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off(ClientEvent.Sync, onSync);
      reject(new AmiError("AMI_TIMEOUT", `no sync from ${client.baseUrl} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onSync = (s: SyncState) => {
      if (s !== SyncState.Prepared && s !== SyncState.Syncing) return;
      clearTimeout(timer);
      client.off(ClientEvent.Sync, onSync);
      resolve();
    };
    client.on(ClientEvent.Sync, onSync);
    client.startClient({ initialSyncLimit: 20 }).catch(reject);
  });
}
