/**
 * Where the homeserver is, logging in and out, and the one MatrixClient of a session. The session (token and
 * device) is kept in localStorage so a reload resumes it; the device's crypto store lives in IndexedDB keyed by
 * user and device, so both must survive together.
 */
import { ClientEvent, createClient, type MatrixClient, PendingEventOrdering, SyncState } from "matrix-js-sdk";
import { startCrypto } from "./crypto.ts";

export interface PageConfig {
  /** Client-server API base URL, e.g. http://127.0.0.1:8008 */
  homeserverUrl: string;
  serverName?: string;
}

export interface StoredSession {
  baseUrl: string;
  userId: string;
  accessToken: string;
  deviceId: string;
}

const KEY = "ami-chat.session";

/** The page's /config.json, served by the `web` service; a same-host guess when it is absent (vite dev). */
export async function loadPageConfig(): Promise<PageConfig> {
  try {
    const r = await fetch("./config.json", { cache: "no-store" });
    if (r.ok) return (await r.json()) as PageConfig;
  } catch {
    // fall through to the guess
  }
  return { homeserverUrl: `${location.protocol}//${location.hostname}:8008` };
}

export function storedSession(): StoredSession | null {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) ?? "null");
    return s?.accessToken && s.userId && s.deviceId && s.baseUrl ? (s as StoredSession) : null;
  } catch {
    return null;
  }
}

export async function passwordLogin(baseUrl: string, user: string, password: string): Promise<StoredSession> {
  const anon = createClient({ baseUrl });
  const r = await anon.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: `ami-streams web (${navigator.platform || "browser"})`,
  });
  const s: StoredSession = { baseUrl, userId: r.user_id, accessToken: r.access_token, deviceId: r.device_id };
  localStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

/** Build the client, start crypto when browser and server can, start syncing; resolves after the first sync. */
export async function startSession(s: StoredSession): Promise<{ client: MatrixClient; encryption: boolean }> {
  const client = createClient({
    baseUrl: s.baseUrl,
    accessToken: s.accessToken,
    userId: s.userId,
    deviceId: s.deviceId,
    timelineSupport: true,
  });
  const encryption = await startCrypto(client);
  const ready = new Promise<void>((resolve, reject) => {
    const on = (state: SyncState, _prev: SyncState | null, data?: { error?: Error }) => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) {
        client.off(ClientEvent.Sync, on);
        resolve();
      } else if (state === SyncState.Error && data?.error && /M_UNKNOWN_TOKEN/.test(String(data.error))) {
        client.off(ClientEvent.Sync, on);
        reject(data.error);
      }
    };
    client.on(ClientEvent.Sync, on);
  });
  // Threads: replies in a thread live in the thread's own timeline, not the room's (spec: "Threading").
  await client.startClient({
    initialSyncLimit: 30,
    pendingEventOrdering: PendingEventOrdering.Detached,
    threadSupport: true,
  });
  await ready;
  return { client, encryption };
}

/** Forget the session locally even when the server call fails (expired token, server down). */
export async function logout(client: MatrixClient): Promise<void> {
  localStorage.removeItem(KEY);
  try {
    await client.logout(true);
  } catch {
    client.stopClient();
  }
}

export function forgetSession(): void {
  localStorage.removeItem(KEY);
}
