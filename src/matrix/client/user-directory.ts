/** Spec section "User directory" (users.yaml). */
import { z } from "zod";
import { json, type Route } from "../http/types.ts";
import { searchUserDirectory } from "../service/user-directory.ts";
import { parseBody } from "../validate.ts";

const body = z.object({ search_term: z.string(), limit: z.number().int().min(0).optional() });

export const routes: Route[] = [
  /** POST /_matrix/client/v3/user_directory/search */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/user_directory/search"],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const b = parseBody(body, req.body);
      return json(await searchUserDirectory(req.hs, req.requester!.userId, b.search_term, b.limit ?? 10));
    },
  },
];
