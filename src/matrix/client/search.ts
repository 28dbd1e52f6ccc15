/** Spec section "Server Side Search" (search.yaml). */
import { z } from "zod";
import type { Route } from "../http/types.ts";
import { json } from "../http/types.ts";
import { roomEventFilter } from "../service/filters.ts";
import { searchRoomEvents } from "../service/search.ts";
import { parseBody } from "../validate.ts";

const body = z.object({
  search_categories: z.object({
    room_events: z
      .object({
        search_term: z.string(),
        keys: z.array(z.enum(["content.body", "content.name", "content.topic"])).optional(),
        filter: roomEventFilter.optional(),
        order_by: z.enum(["recent", "rank"]).optional(),
        event_context: z
          .object({
            before_limit: z.number().int().min(0).optional(),
            after_limit: z.number().int().min(0).optional(),
            include_profile: z.boolean().optional(),
          })
          .optional(),
        include_state: z.boolean().optional(),
        groupings: z
          .object({ group_by: z.array(z.object({ key: z.enum(["room_id", "sender"]).optional() })).optional() })
          .optional(),
      })
      .optional(),
  }),
});

export const routes: Route[] = [
  /** POST /_matrix/client/v3/search */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/search"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const b = parseBody(body, req.body);
      const re = b.search_categories.room_events;
      if (!re) return json({ search_categories: {} });
      const room_events = await searchRoomEvents(
        req.hs,
        req.requester!,
        {
          searchTerm: re.search_term,
          keys: re.keys,
          filter: re.filter,
          orderBy: re.order_by,
          eventContext: re.event_context && {
            beforeLimit: re.event_context.before_limit,
            afterLimit: re.event_context.after_limit,
            includeProfile: re.event_context.include_profile,
          },
          includeState: re.include_state,
          groupBy: re.groupings?.group_by?.flatMap((g) => (g.key ? [g.key] : [])),
        },
        req.query.get("next_batch"),
      );
      return json({ search_categories: { room_events } });
    },
  },
];
