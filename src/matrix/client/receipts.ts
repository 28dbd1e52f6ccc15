/** Spec section "Receipts" (receipts.yaml). */
import { AmiError } from "../../core/errors.ts";
import { sendReceiptEdu } from "../federation/edus-out.ts";
import { json, type Route } from "../http/types.ts";
import { checkReceiptThread } from "../service/relations.ts";
import { FULLY_READ, RECEIPT_TYPES, setFullyRead, setReceipt } from "../service/sync/receipts.ts";

export const routes: Route[] = [
  /** POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId} */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const { roomId, receiptType, eventId } = req.params;
      const userId = req.requester!.userId;
      const threadId = req.body?.thread_id;
      if (threadId !== undefined && (typeof threadId !== "string" || threadId === "")) {
        throw new AmiError("M_INVALID_PARAM", "thread_id field must be a non-empty string");
      }
      if (receiptType === FULLY_READ) {
        if (threadId !== undefined) throw new AmiError("M_INVALID_PARAM", "thread_id is not allowed for m.fully_read");
        await setFullyRead(req.hs, roomId, userId, eventId);
        return json({});
      }
      if (!(RECEIPT_TYPES as readonly string[]).includes(receiptType))
        throw new AmiError("M_INVALID_PARAM", `Unknown receipt type '${receiptType}'`);
      if (threadId !== undefined && threadId !== "main" && !threadId.startsWith("$"))
        throw new AmiError("M_INVALID_PARAM", "thread_id must be 'main' or an event ID");
      if (threadId !== undefined) await checkReceiptThread(req.hs.store, eventId, threadId);
      await setReceipt(req.hs, { roomId, userId, type: receiptType, eventId, threadId: threadId ?? null });
      // Private receipts stay on this server.
      if (receiptType === "m.read") sendReceiptEdu(req.hs, roomId, userId, eventId, threadId ?? null);
      return json({});
    },
  },
];
