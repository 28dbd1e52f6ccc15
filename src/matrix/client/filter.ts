/** Spec section "Filtering" (filter.yaml). */
import { AmiError } from "../../core/errors.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import { createFilter, getFilter } from "../service/filters.ts";

function ownUser(req: MatrixRequest): string {
  if (req.params.userId !== req.requester!.userId)
    throw new AmiError("M_FORBIDDEN", "Cannot use filters of other users");
  return req.params.userId;
}

export const routes: Route[] = [
  /** POST /_matrix/client/v3/user/{userId}/filter */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/user/{userId}/filter"],
    auth: "required",
    async handler(req) {
      const filterId = await createFilter(req.hs, ownUser(req), req.body);
      return json({ filter_id: filterId });
    },
  },
  /** GET /_matrix/client/v3/user/{userId}/filter/{filterId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/user/{userId}/filter/{filterId}"],
    auth: "required",
    async handler(req) {
      return json(await getFilter(req.hs, ownUser(req), req.params.filterId));
    },
  },
];
