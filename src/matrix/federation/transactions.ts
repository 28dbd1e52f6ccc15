/**
 * Incoming federation transactions: `PUT /_matrix/federation/v1/send/{txnId}` (spec server-server
 * "Transactions"), X-Matrix authenticated through signedRoute. At most 50 PDUs and 100 EDUs (more: 400); the
 * body's `origin` must be the authenticated origin; a transaction replayed with the same (origin, txnId) is
 * answered with the first answer and applied once (in memory, the last MAX_REMEMBERED transactions; the to-device
 * message_id dedupe in the store also holds across restarts).
 *
 * PDUs go to the `onPdus` seam (federation/service.ts) — the room DAG's, once it exists; until then every PDU is
 * answered with an error in the `pdus` map. EDUs are dispatched here: each one whose user belongs to another server
 * than the origin, or that fails validation, is dropped (a transaction is not refused for one bad EDU, as the spec
 * says EDUs are best effort); typing and receipts apply only for a room the remote user is joined to in our
 * current state; presence only for a user sharing a room with us; to-device to our existing devices; device-list and signing-key
 * updates keep the remote device-list cache (device-lists.ts).
 */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { parseUserId, serverNameOf } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { json, type Route } from "../http/types.ts";
import { PRESENCE_STATES, type PresenceState, setPresence } from "../service/sync/presence.ts";
import { RECEIPT_TYPES, setReceipt } from "../service/sync/receipts.ts";
import { MAX_TYPING_TIMEOUT_MS } from "../service/typing.ts";
import type { ToDeviceMessage } from "../store/keys-types.ts";
import { roomAdmits } from "./access.ts";
import { applyDeviceListUpdate, applySigningKeyUpdate } from "./device-lists.ts";
import { signedRoute } from "./routes.ts";
import { MAX_EDUS_PER_TXN, MAX_PDUS_PER_TXN } from "./sender.ts";

/** Replays remembered per server process (a Map in insertion order: the oldest forgotten first). */
const MAX_REMEMBERED = 10_000;
const MAX_TO_DEVICE_BYTES = 65_536;
const KNOWN_EDUS = new Set([
  "m.direct_to_device",
  "m.typing",
  "m.receipt",
  "m.presence",
  "m.device_list_update",
  "m.signing_key_update",
]);

export type PduResults = Record<string, { error?: string }>;
/** The seam the room DAG fills: each PDU of a transaction -> {} (accepted) or {error}. */
export type OnPdus = (origin: string, pdus: Record<string, unknown>[]) => Promise<PduResults>;

const txnBody = z.object({
  origin: z.string().min(1).max(255),
  origin_server_ts: z.number().int(),
  pdus: z.array(z.record(z.string(), z.unknown())).max(MAX_PDUS_PER_TXN, `At most ${MAX_PDUS_PER_TXN} PDUs`),
  edus: z
    .array(z.object({ edu_type: z.string().min(1).max(255), content: z.record(z.string(), z.unknown()) }))
    .max(MAX_EDUS_PER_TXN, `At most ${MAX_EDUS_PER_TXN} EDUs`)
    .default([]),
});

/** What this server remembers of the transactions it was sent (per homeserver: hs.federation.inbound). */
export class InboundTransactions {
  readonly #seen = new Map<string, Promise<{ pdus: PduResults }>>();
  /** Counters for tests and the monitor. */
  received = 0;
  replayed = 0;
  edusDropped = 0;
  /** EDUs received by type (bounded: only the spec's types are counted by name). */
  readonly edusByType = new Map<string, number>();

  /** The answer of (origin, txnId): computed by `run` the first time, the same promise after. */
  once(origin: string, txnId: string, run: () => Promise<{ pdus: PduResults }>): Promise<{ pdus: PduResults }> {
    const key = `${origin}\u0000${txnId}`;
    const have = this.#seen.get(key);
    if (have) {
      this.replayed++;
      return have;
    }
    this.received++;
    const p = run();
    this.#seen.set(key, p);
    // A failure (our store down) is not remembered: the sender retries and it runs again.
    p.catch(() => this.#seen.delete(key));
    if (this.#seen.size > MAX_REMEMBERED) this.#seen.delete(this.#seen.keys().next().value as string);
    return p;
  }
}

export const transactionRoutes: Route[] = [
  signedRoute({
    method: "PUT",
    paths: ["/_matrix/federation/v1/send/{txnId}"],
    async handler(req, origin) {
      const { hs } = req;
      const { txnId } = req.params;
      if (txnId.length === 0 || txnId.length > 255) throw new AmiError("M_INVALID_PARAM", "Bad transaction ID");
      const parsed = txnBody.safeParse(req.body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new AmiError("M_BAD_JSON", `Invalid transaction: ${issue.path.join(".")}: ${issue.message}`);
      }
      const t = parsed.data;
      if (t.origin !== origin)
        throw new AmiError("M_FORBIDDEN", `Transaction origin ${t.origin} is not the signing server ${origin}`);
      hs.federation.sender.heardFrom(origin);
      const res = await hs.federation.inbound.once(origin, txnId, async () => {
        const pdus = t.pdus.length ? await hs.federation.onPdus(origin, t.pdus) : {};
        for (const edu of t.edus) {
          const known = KNOWN_EDUS.has(edu.edu_type) ? edu.edu_type : "other";
          hs.federation.inbound.edusByType.set(known, (hs.federation.inbound.edusByType.get(known) ?? 0) + 1);
          const ok = await applyEdu(hs, origin, edu).catch((e) => {
            hs.log.warn("federation: EDU failed", { origin, type: edu.edu_type, err: String(e).slice(0, 300) });
            return false;
          });
          if (!ok) hs.federation.inbound.edusDropped++;
        }
        return { pdus };
      });
      return json(res);
    },
  }),
];

/** Until the room DAG provides onPdus: every PDU answered "not yet supported", nothing applied. */
export async function pdusNotSupported(_origin: string, pdus: Record<string, unknown>[]): Promise<PduResults> {
  const out: PduResults = {};
  for (const [i, p] of pdus.entries()) {
    const id = typeof p.event_id === "string" ? p.event_id : `pdu ${i}`;
    out[id] = { error: "Receiving room events over federation is not yet supported by this server" };
  }
  return out;
}

/** The user IDs an EDU names must be on the origin server. */
function ownedBy(origin: string, userId: unknown): userId is string {
  return typeof userId === "string" && parseUserId(userId) !== null && serverNameOf(userId) === origin;
}

/** The user is joined to the room here and the room's server ACL admits its server (EDUs of a room, spec ACLs). */
async function joined(hs: Homeserver, roomId: string, userId: string): Promise<boolean> {
  if ((await hs.store.events.getMembership(roomId, userId))?.membership !== "join") return false;
  return roomAdmits(hs, roomId, serverNameOf(userId) ?? "");
}

/** Apply one EDU; false when it was dropped (invalid, not the origin's user, no such relationship here). */
export async function applyEdu(
  hs: Homeserver,
  origin: string,
  edu: { edu_type: string; content: Record<string, unknown> },
): Promise<boolean> {
  const c = edu.content;
  switch (edu.edu_type) {
    case "m.direct_to_device": {
      const { sender, type, message_id: messageId, messages } = c;
      if (!ownedBy(origin, sender) || typeof type !== "string" || type === "" || type.length > 255) return false;
      if (typeof messageId !== "string" || messageId === "" || messageId.length > 255) return false;
      if (!messages || typeof messages !== "object" || Array.isArray(messages)) return false;
      const out: ToDeviceMessage[] = [];
      for (const [userId, devices] of Object.entries(messages as Record<string, unknown>)) {
        if (serverNameOf(userId) !== hs.serverName || !devices || typeof devices !== "object") continue;
        for (const [deviceId, content] of Object.entries(devices as Record<string, unknown>)) {
          if (!content || typeof content !== "object" || Array.isArray(content)) continue;
          if (Buffer.byteLength(JSON.stringify(content)) > MAX_TO_DEVICE_BYTES) continue;
          out.push({ userId, deviceId, type, content: content as ToDeviceMessage["content"] });
        }
      }
      if (out.length === 0) return false;
      const userIds = [...new Set(out.map((m) => m.userId))];
      // message_id is the sender's dedupe key (spec): recorded as the txnId of the (sender, origin) pair.
      const from = { userId: sender, deviceId: `federation:${origin}`, txnId: messageId };
      await hs.stream.write((pos) => hs.store.keys.addToDeviceMessages(from, out, pos), { kind: "users", userIds });
      return true;
    }
    case "m.typing": {
      const { room_id: roomId, user_id: userId, typing } = c;
      if (!ownedBy(origin, userId) || typeof roomId !== "string" || typeof typing !== "boolean") return false;
      if (!(await joined(hs, roomId, userId))) return false;
      hs.typing.setTyping(roomId, userId, typing, MAX_TYPING_TIMEOUT_MS);
      return true;
    }
    case "m.receipt": {
      // content: room_id -> "m.read" -> user_id -> {event_ids: [..], data: {ts, thread_id?}}
      let any = false;
      for (const [roomId, byType] of Object.entries(c)) {
        if (!byType || typeof byType !== "object") continue;
        for (const [type, byUser] of Object.entries(byType as Record<string, unknown>)) {
          if (!(RECEIPT_TYPES as readonly string[]).includes(type) || type === "m.read.private") continue;
          if (!byUser || typeof byUser !== "object") continue;
          for (const [userId, v] of Object.entries(byUser as Record<string, unknown>)) {
            const r = v as { event_ids?: unknown; data?: { thread_id?: unknown } } | null;
            if (!ownedBy(origin, userId) || !r || !Array.isArray(r.event_ids) || typeof r.event_ids[0] !== "string")
              continue;
            if (!(await joined(hs, roomId, userId))) continue;
            const threadId = typeof r.data?.thread_id === "string" ? r.data.thread_id : null;
            const ok = await setReceipt(hs, { roomId, userId, type, eventId: r.event_ids[0], threadId }).then(
              () => true,
              () => false,
            );
            any ||= ok;
          }
        }
      }
      return any;
    }
    case "m.presence": {
      if (!hs.config.presence.enabled) return false;
      const push = (c as { push?: unknown }).push;
      if (!Array.isArray(push)) return false;
      let any = false;
      for (const p of push.slice(0, 1000) as (Record<string, unknown> | null)[]) {
        if (!p || !ownedBy(origin, p.user_id) || !PRESENCE_STATES.includes(p.presence as PresenceState)) continue;
        if ((await hs.store.events.getRoomsForUser(p.user_id)).every((m) => m.membership !== "join")) continue;
        const msg = typeof p.status_msg === "string" ? p.status_msg.slice(0, 1000) : undefined;
        await setPresence(hs, p.user_id, p.presence as PresenceState, msg);
        any = true;
      }
      return any;
    }
    case "m.device_list_update":
      // The remote device-list cache, kept along the prev_id chain (device-lists.ts).
      return applyDeviceListUpdate(hs, origin, c);
    case "m.signing_key_update":
      return applySigningKeyUpdate(hs, origin, c);
    default:
      return false;
  }
}
