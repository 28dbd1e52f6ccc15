/** Spec section "Send-to-Device messaging" (to_device.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { serverNameOf } from "../events/ids.ts";
import { json, type Route } from "../http/types.ts";
import type { ToDeviceMessage } from "../store/keys-types.ts";
import { parseBody } from "../validate.ts";

/** Per message, like the federation EDU limit: a bigger payload is refused, not silently dropped. */
export const MAX_TO_DEVICE_BYTES = 65_536;
const MAX_MESSAGES = 10_000;

const body = z.object({
  messages: z.record(z.string().max(255), z.record(z.string().min(1).max(255), z.record(z.string(), z.unknown()))),
});

export const routes: Route[] = [
  /** PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/sendToDevice/{eventType}/{txnId}"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { hs } = req;
      const r = req.requester!;
      const { eventType, txnId } = req.params;
      if (eventType.length === 0 || eventType.length > 255) throw new AmiError("M_INVALID_PARAM", "Bad event type");
      if (txnId.length === 0 || txnId.length > 255) throw new AmiError("M_INVALID_PARAM", "Bad transaction ID");
      const b = parseBody(body, req.body);
      const messages: ToDeviceMessage[] = [];
      /** Remote server -> its users' messages (one m.direct_to_device EDU per server). */
      const remote = new Map<string, Record<string, Record<string, Record<string, unknown>>>>();
      let count = 0;
      for (const [userId, devices] of Object.entries(b.messages)) {
        for (const [deviceId, content] of Object.entries(devices)) {
          if (Buffer.byteLength(JSON.stringify(content)) > MAX_TO_DEVICE_BYTES)
            throw new AmiError("M_TOO_LARGE", `A to-device message exceeds ${MAX_TO_DEVICE_BYTES} bytes`);
          count++;
          // Unknown local users and devices are skipped by the store; remote ones go over federation (if on).
          const server = serverNameOf(userId);
          if (server === hs.serverName) messages.push({ userId, deviceId, type: eventType, content });
          else if (server && hs.federation.sender.enabled) {
            let forServer = remote.get(server);
            if (!forServer) {
              forServer = {};
              remote.set(server, forServer);
            }
            forServer[userId] = { ...forServer[userId], [deviceId]: content };
          }
        }
      }
      if (count > MAX_MESSAGES) throw new AmiError("M_TOO_LARGE", `At most ${MAX_MESSAGES} messages`);
      // Bounded before anything is written (federation/sender.ts admitToDevice): 429 past the limits.
      if (remote.size > 0) await hs.federation.sender.admitToDevice(r.userId, [...remote.keys()]);
      const sender = { userId: r.userId, deviceId: r.deviceId, txnId };
      // Through the stream writer: the messages get a stream position and wake the recipients' long-polls.
      // Tagged with the recipients: only their syncs (and WebSocket streams) have anything new.
      const userIds = [...new Set(messages.map((m) => m.userId))];
      const fresh = await hs.stream.write((pos) => hs.store.keys.addToDeviceMessages(sender, messages, pos), {
        kind: "users",
        userIds,
      });
      // A retried txnId (fresh false) was queued the first time.
      if (fresh) {
        // Remote messages: the same (sender device, txnId) makes the same message_id, so a client retry is deduped by
        // the receiving server too (spec: message_id is unique per sender).
        const messageId = `${r.deviceId}.${txnId}`;
        // Each is in the destination's durable outbox before the client is answered (federation/sender.ts).
        for (const [server, msgs] of remote)
          await hs.federation.sender.sendToDevice(server, {
            edu_type: "m.direct_to_device",
            content: { sender: r.userId, type: eventType, message_id: messageId, messages: msgs },
          });
      }
      return json({});
    },
  },
];
