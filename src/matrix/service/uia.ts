/**
 * User-interactive authentication (spec "User-Interactive Authentication API"): sessions, the stages we
 * offer (m.login.dummy, m.login.password, m.login.registration_token) and the 401 challenge bodies.
 */
import { AmiError } from "../../core/errors.ts";
import { randomString } from "../events/ids.ts";
import { field, isJsonObject, type JsonObject } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import { loginUserId, registrationTokenUsable } from "./registration.ts";

const SESSION_MS = 10 * 60_000;
const MAX_SESSIONS = 10_000;

export interface UiaSession {
  id: string;
  /** What the session authorises (`register`, `deactivate:@u:s`...): a session cannot be reused elsewhere. */
  purpose: string;
  completed: Set<string>;
  created: number;
  /** The registration token the m.login.registration_token stage accepted. */
  registrationToken?: string;
}

const sessionsByHs = new WeakMap<Homeserver, Map<string, UiaSession>>();

function sessions(hs: Homeserver): Map<string, UiaSession> {
  let m = sessionsByHs.get(hs);
  if (!m) {
    m = new Map();
    sessionsByHs.set(hs, m);
  }
  return m;
}

async function newSession(hs: Homeserver, purpose: string): Promise<UiaSession> {
  const now = Date.now();
  const s: UiaSession = { id: randomString(24), purpose, completed: new Set(), created: now };
  if (hs.cluster.values) {
    await saveShared(hs, s);
    return s;
  }
  const m = sessions(hs);
  if (m.size >= MAX_SESSIONS) for (const [k, x] of m) if (x.created + SESSION_MS < now) m.delete(k);
  if (m.size >= MAX_SESSIONS) m.delete(m.keys().next().value as string);
  m.set(s.id, s);
  return s;
}

/**
 * Several workers (cluster/): sessions live in Redis, since each step of a flow may reach a different worker. Redis
 * down: the flow fails with a clear error instead of half-working.
 */
async function saveShared(hs: Homeserver, s: UiaSession): Promise<void> {
  const { completed, ...rest } = s;
  await sharedOp(() =>
    hs.cluster.values!.set(`uia:${s.id}`, JSON.stringify({ ...rest, completed: [...completed] }), SESSION_MS),
  );
}

async function findSession(hs: Homeserver, id: string): Promise<UiaSession | undefined> {
  if (!hs.cluster.values) return sessions(hs).get(id);
  const raw = await sharedOp(() => hs.cluster.values!.get(`uia:${id}`));
  if (!raw) return undefined;
  const j = JSON.parse(raw) as Omit<UiaSession, "completed"> & { completed: string[] };
  return { ...j, completed: new Set(j.completed) };
}

async function sharedOp<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new AmiError("AMI_UNAVAILABLE", `UIA sessions are unavailable (Redis): ${(e as Error).message}`);
  }
}

/** The 401 reply a handler returns as is (the HTTP edge's Reply shape). */
export interface UiaChallenge {
  status: 401;
  json: Record<string, unknown>;
}

function challenge(flows: string[][], s: UiaSession, error?: { errcode: string; error: string }): UiaChallenge {
  return {
    status: 401,
    json: {
      ...error,
      flows: flows.map((stages) => ({ stages })),
      params: {},
      session: s.id,
      ...(s.completed.size ? { completed: [...s.completed] } : {}),
    },
  };
}

export type UiaResult = { done: true; session: UiaSession } | { done: false; reply: UiaChallenge };

/**
 * Run one UIA step for `req.body.auth`. `userId`: the account the m.login.password stage must prove (the
 * requester). Returns the 401 reply to send, or done once a whole flow is complete.
 */
export async function checkUia(
  req: { hs: Homeserver; body: unknown },
  flows: string[][],
  purpose: string,
  userId?: string,
): Promise<UiaResult> {
  const { hs } = req;
  const given = field(req.body, "auth");
  if (given === undefined || given === null)
    return { done: false, reply: challenge(flows, await newSession(hs, purpose)) };
  if (!isJsonObject(given)) throw new AmiError("M_BAD_JSON", "'auth' must be an object");
  const auth = given;
  if (auth.session !== undefined && typeof auth.session !== "string")
    throw new AmiError("M_BAD_JSON", "'auth.session' must be a string");
  if (auth.type !== undefined && typeof auth.type !== "string")
    throw new AmiError("M_BAD_JSON", "'auth.type' must be a string");

  let s: UiaSession;
  if (auth.session !== undefined) {
    const found = await findSession(hs, auth.session);
    if (!found || found.created + SESSION_MS < Date.now())
      throw new AmiError("M_INVALID_PARAM", "Unknown or expired UIA session");
    if (found.purpose !== purpose) throw new AmiError("M_FORBIDDEN", "UIA session was started for another request");
    s = found;
  } else s = await newSession(hs, purpose);

  if (auth.type === undefined) return { done: false, reply: challenge(flows, s) };
  const stage = auth.type;
  if (!flows.some((f) => f.includes(stage))) {
    return {
      done: false,
      reply: challenge(flows, s, { errcode: "M_UNRECOGNIZED", error: `Unsupported stage ${auth.type}` }),
    };
  }
  const failure = await runStage(hs, auth, s, userId);
  if (failure) return { done: false, reply: challenge(flows, s, { errcode: "M_FORBIDDEN", error: failure }) };
  s.completed.add(auth.type);
  if (hs.cluster.values) await saveShared(hs, s);
  if (flows.some((f) => f.every((st) => s.completed.has(st)))) return { done: true, session: s };
  return { done: false, reply: challenge(flows, s) };
}

/** Null when the stage passed, else why not. */
async function runStage(hs: Homeserver, auth: JsonObject, s: UiaSession, userId?: string): Promise<string | null> {
  switch (auth.type) {
    case "m.login.dummy":
      return null;
    case "m.login.password": {
      const who = field(auth, "identifier", "type") === "m.id.user" ? field(auth, "identifier", "user") : auth.user;
      if (typeof auth.password !== "string") throw new AmiError("M_BAD_JSON", "'auth.password' must be a string");
      if (who !== undefined && typeof who !== "string")
        throw new AmiError("M_BAD_JSON", "'auth.identifier.user' must be a string");
      const claimed = who === undefined ? userId : loginUserId(hs, who);
      if (!userId || claimed !== userId) return "Password stage must authenticate the requesting user";
      const user = await hs.store.accounts.getUser(userId);
      if (!user?.passwordHash || user.deactivated) return "Invalid password";
      return (await hs.auth.verifyPassword(auth.password, user.passwordHash)) ? null : "Invalid password";
    }
    case "m.login.registration_token": {
      if (typeof auth.token !== "string") throw new AmiError("M_BAD_JSON", "'auth.token' must be a string");
      if (!registrationTokenUsable(await hs.store.accounts.getRegistrationToken(auth.token)))
        return "Invalid registration token";
      s.registrationToken = auth.token;
      return null;
    }
    default:
      return `Unsupported stage ${auth.type}`;
  }
}

/** Drop a session once the request it authorised has succeeded. */
export function finishUia(hs: Homeserver, s: UiaSession): void {
  sessions(hs).delete(s.id);
  hs.cluster.values?.del(`uia:${s.id}`).catch(() => {});
}
