/** Spec section "Syncing" (sync.yaml). */
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";
import { sync } from "../service/sync/index.ts";
import { queryInt } from "../validate.ts";

function queryBool(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null || v === "" || v === "false") return false;
  if (v === "true") return true;
  throw new AmiError("M_INVALID_PARAM", `'${name}' must be true or false`);
}

export const routes: Route[] = [
  /** GET /_matrix/client/v3/sync */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/sync"],
    auth: "required",
    holdsOpen: true,
    async handler(req) {
      const q = req.query;
      const setPresence = q.get("set_presence");
      if (setPresence !== null && !["online", "offline", "unavailable"].includes(setPresence)) {
        throw new AmiError("M_INVALID_PARAM", "'set_presence' must be online, offline or unavailable");
      }
      const timeout = Math.min(queryInt(q, "timeout", 0, 0), req.hs.config.sync.maxTimeoutMs);
      // A long-poll whose session is revoked meanwhile (logout, deactivation, a lock; on any worker) ends at once
      // with the error its next request would get, rather than answering a revoked session up to its timeout.
      const revoked = new AbortController();
      let lock = false;
      const off = req.hs.auth.onRevoke((pred, rev) => {
        // A token the client itself replaced by refreshing: its long-poll in flight answers as usual (a 401 would
        // read as a logout to the client, which has moved on to its new token already).
        if (!pred(req.requester!) || ("tokens" in rev && rev.rotated)) return;
        lock = "userId" in rev && rev.locked === true;
        revoked.abort();
      });
      let body: Awaited<ReturnType<typeof sync>>;
      try {
        body = await sync(req.hs, req.requester!, {
          since: q.get("since") || null,
          filter: q.get("filter"),
          fullState: queryBool(q, "full_state"),
          setPresence,
          timeoutMs: timeout,
          signal: AbortSignal.any([req.signal, revoked.signal]),
        });
      } finally {
        off();
      }
      if (revoked.signal.aborted) {
        if (lock) throw new AmiError("M_USER_LOCKED", "This account has been locked", { soft_logout: true });
        throw new AmiError("M_UNKNOWN_TOKEN", "Access token revoked", { soft_logout: false });
      }
      return json(body);
    },
  },
];
