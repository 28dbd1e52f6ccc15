/** Well-known discovery beyond /.well-known/matrix/client (spec support.yaml, policy_server.yaml). */
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";

export const routes: Route[] = [
  /**
   * GET /.well-known/matrix/support — from `matrix.support` (contacts, page); 404 when neither is set, as the spec
   * requires at least one of them in a 200.
   */
  {
    method: "GET",
    paths: ["/.well-known/matrix/support"],
    auth: "none",
    async handler(req) {
      const { contacts, page } = req.hs.config.support;
      if (contacts.length === 0 && !page) throw new AmiError("M_NOT_FOUND", "No support information is configured");
      const out: Record<string, unknown> = {};
      if (contacts.length) out.contacts = contacts;
      if (page) out.support_page = page;
      return json(out);
    },
  },
  /** GET /.well-known/matrix/policy_server — this server runs no policy server (deliberately 404). */
  {
    method: "GET",
    paths: ["/.well-known/matrix/policy_server"],
    auth: "none",
    async handler() {
      throw new AmiError("M_NOT_FOUND", "This server has no policy server");
    },
  },
];
