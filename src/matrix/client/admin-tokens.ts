/** Synapse admin API: registration tokens (`/_synapse/admin/v1/registration_tokens`). Admins only. */
import { randomInt } from "node:crypto";
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { json, type Route } from "../http/types.ts";
import { registrationTokenUsable } from "../service/registration.ts";
import type { RegistrationTokenRow } from "../store/types.ts";
import { parseBody } from "../validate.ts";
import { requireAdmin } from "./admin-kit.ts";

const TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-";
const TOKEN_RE = /^[A-Za-z0-9._~-]{1,64}$/;

const tokenJson = (t: RegistrationTokenRow) => ({
  token: t.token,
  uses_allowed: t.usesAllowed,
  pending: t.pending,
  completed: t.completed,
  expiry_time: t.expiryTs,
});

const usesAllowed = z.number().int().min(0).nullable().optional();
const expiryTime = z.number().int().nullable().optional();
const newBody = z.object({
  token: z.string().regex(TOKEN_RE, "must be 1-64 of A-Za-z0-9._~-").optional(),
  length: z.number().int().min(1).max(64).optional(),
  uses_allowed: usesAllowed,
  expiry_time: expiryTime,
});
const updateBody = z.object({ uses_allowed: usesAllowed, expiry_time: expiryTime });

function checkExpiry(ts: number | null | undefined): void {
  if (typeof ts === "number" && ts < Date.now())
    throw new AmiError("M_INVALID_PARAM", "expiry_time must not be in the past");
}

export const routes: Route[] = [
  /** GET /_synapse/admin/v1/registration_tokens */
  {
    method: "GET",
    paths: ["/_synapse/admin/v1/registration_tokens"],
    auth: "required",
    handler: async (req) => {
      requireAdmin(req);
      const valid = req.query.get("valid");
      if (valid !== null && valid !== "true" && valid !== "false")
        throw new AmiError("M_INVALID_PARAM", "'valid' must be true or false");
      let rows = await req.hs.store.accounts.listRegistrationTokens();
      if (valid !== null) rows = rows.filter((t) => registrationTokenUsable(t) === (valid === "true"));
      return json({ registration_tokens: rows.map(tokenJson) });
    },
  },
  /** POST /_synapse/admin/v1/registration_tokens/new */
  {
    method: "POST",
    paths: ["/_synapse/admin/v1/registration_tokens/new"],
    auth: "required",
    handler: async (req) => {
      requireAdmin(req);
      const b = parseBody(newBody, req.body);
      checkExpiry(b.expiry_time);
      const { store } = req.hs;
      let token = b.token;
      if (token !== undefined && (await store.accounts.getRegistrationToken(token)))
        throw new AmiError("M_INVALID_PARAM", `Token already exists: ${token}`);
      while (token === undefined || (await store.accounts.getRegistrationToken(token))) {
        token = Array.from({ length: b.length ?? 16 }, () => TOKEN_CHARS[randomInt(TOKEN_CHARS.length)]).join("");
      }
      const row: RegistrationTokenRow = {
        token,
        usesAllowed: b.uses_allowed ?? null,
        pending: 0,
        completed: 0,
        expiryTs: b.expiry_time ?? null,
      };
      await store.accounts.createRegistrationToken(row);
      return json(tokenJson(row));
    },
  },
  /** GET /_synapse/admin/v1/registration_tokens/{token} */
  {
    method: "GET",
    paths: ["/_synapse/admin/v1/registration_tokens/{token}"],
    auth: "required",
    handler: async (req) => {
      requireAdmin(req);
      const t = await req.hs.store.accounts.getRegistrationToken(req.params.token);
      if (!t) throw new AmiError("M_NOT_FOUND", "No such registration token");
      return json(tokenJson(t));
    },
  },
  /** PUT /_synapse/admin/v1/registration_tokens/{token} */
  {
    method: "PUT",
    paths: ["/_synapse/admin/v1/registration_tokens/{token}"],
    auth: "required",
    handler: async (req) => {
      requireAdmin(req);
      const b = parseBody(updateBody, req.body);
      checkExpiry(b.expiry_time);
      const { store } = req.hs;
      const t = await store.accounts.getRegistrationToken(req.params.token);
      if (!t) throw new AmiError("M_NOT_FOUND", "No such registration token");
      // One UPDATE: the use counts are kept and a concurrent registration can't slip between two writes.
      await store.accounts.updateRegistrationToken(t.token, { usesAllowed: b.uses_allowed, expiryTs: b.expiry_time });
      const row = await store.accounts.getRegistrationToken(t.token);
      if (!row) throw new AmiError("M_NOT_FOUND", "No such registration token");
      return json(tokenJson(row));
    },
  },
  /** DELETE /_synapse/admin/v1/registration_tokens/{token} */
  {
    method: "DELETE",
    paths: ["/_synapse/admin/v1/registration_tokens/{token}"],
    auth: "required",
    handler: async (req) => {
      requireAdmin(req);
      const t = await req.hs.store.accounts.getRegistrationToken(req.params.token);
      if (!t) throw new AmiError("M_NOT_FOUND", "No such registration token");
      await req.hs.store.accounts.deleteRegistrationToken(t.token);
      return json({});
    },
  },
];
