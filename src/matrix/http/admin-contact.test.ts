import assert from "node:assert/strict";
import { test } from "node:test";
import { adminContact } from "./server.ts";

test("admin_contact of M_RESOURCE_LIMIT_EXCEEDED: the support page, else an admin's email, else a Matrix ID", () => {
  const contact = (c: { matrix_id?: string; email_address?: string; role: string }) => c;
  assert.equal(adminContact({ contacts: [], page: null }), undefined);
  assert.equal(
    adminContact({
      contacts: [contact({ email_address: "ops@example.org", role: "m.role.admin" })],
      page: "https://help.example.org",
    }),
    "https://help.example.org",
  );
  assert.equal(
    adminContact({
      contacts: [
        contact({ email_address: "sec@example.org", role: "m.role.security" }),
        contact({ matrix_id: "@admin:example.org", role: "m.role.admin" }),
      ],
      page: null,
    }),
    "https://matrix.to/#/@admin:example.org",
  );
  assert.equal(
    adminContact({ contacts: [contact({ email_address: "sec@example.org", role: "m.role.security" })], page: null }),
    "mailto:sec@example.org",
  );
});
