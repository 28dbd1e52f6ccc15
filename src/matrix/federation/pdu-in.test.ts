/** The format step of incoming PDUs (checkPduFormat): pure, no server. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { signEvent } from "../events/event-signing.ts";
import { eventIdFor } from "../events/hashing.ts";
import { generateSigningKey } from "../events/signing.ts";
import { checkPduFormat, MAX_PDU_BYTES, PduError } from "./pdu-in.ts";

const key = generateSigningKey();
const pdu = (over: Record<string, unknown> = {}) =>
  signEvent(
    {
      room_id: "!r:hs1.test",
      sender: "@bob:hs2.test",
      type: "m.room.message",
      content: { body: "hi" },
      origin_server_ts: 1_700_000_000_000,
      depth: 5,
      prev_events: [`$${"a".repeat(43)}`],
      auth_events: [`$${"b".repeat(43)}`],
      ...over,
    },
    "hs2.test",
    key,
    "11",
  ) as Record<string, unknown>;

test("a well-formed PDU: its event ID is the reference hash", () => {
  const p = pdu();
  assert.equal(checkPduFormat(p, "11", "hs2.test"), eventIdFor(p, "11"));
});

test("each malformed PDU is refused with the reason", () => {
  const bad: [Record<string, unknown>, string, RegExp][] = [
    [pdu(), "hs3.test", /not on the origin/],
    [pdu({ sender: "bob" }), "hs2.test", /bad sender/],
    [pdu({ depth: -1 }), "hs2.test", /bad depth/],
    [{ ...pdu(), depth: 1.5 }, "hs2.test", /bad depth/],
    [pdu({ content: [] }), "hs2.test", /bad content/],
    [pdu({ prev_events: [] }), "hs2.test", /no prev_events/],
    [
      pdu({ prev_events: Array.from({ length: 21 }, (_, i) => `$${String(i).padStart(43, "x")}`) }),
      "hs2.test",
      /prev_events/,
    ],
    [pdu({ auth_events: ["not-an-id"] }), "hs2.test", /auth_events/],
    [pdu({ type: "x".repeat(256) }), "hs2.test", /too long/],
    [pdu({ state_key: 5 }), "hs2.test", /state_key/],
    [pdu({ content: { body: "x".repeat(MAX_PDU_BYTES) } }), "hs2.test", /bytes/],
    [{ ...pdu(), hashes: undefined }, "hs2.test", /no hashes/],
  ];
  for (const [p, origin, why] of bad)
    assert.throws(
      () => checkPduFormat(p, "11", origin),
      (e: Error) => e instanceof PduError && why.test(e.message),
      String(why),
    );
  assert.throws(() => checkPduFormat(pdu(), "99", "hs2.test"), /unsupported room version/);
});

test("a create event needs no prev_events", () => {
  const p = pdu({ type: "m.room.create", state_key: "", prev_events: [], auth_events: [] });
  assert.equal(checkPduFormat(p, "11", "hs2.test"), eventIdFor(p, "11"));
});

test("room version 12: an event citing the create event the room ID names is refused", () => {
  const create = `$${"c".repeat(43)}`;
  const room = `!${"c".repeat(43)}`;
  const cites = pdu({ room_id: room, auth_events: [create, `$${"b".repeat(43)}`] });
  assert.throws(() => checkPduFormat(cites, "12", "hs2.test"), /must not list the create event/);
  // v11 rooms cite it, and v12 events citing other events are fine.
  assert.equal(checkPduFormat(cites, "11", "hs2.test"), eventIdFor(cites, "11"));
  const fine = pdu({ room_id: room });
  assert.equal(checkPduFormat(fine, "12", "hs2.test"), eventIdFor(fine, "12"));
});
