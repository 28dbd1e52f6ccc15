import assert from "node:assert/strict";
import { test } from "node:test";
import { type AuthCheckEvent, type AuthEvent, authTypesFor, checkAuth, type StateKey, stateKey } from "./auth.ts";
import { generateSigningKey, signJson } from "./signing.ts";

const ROOM = "!room:x.org";
const CREATOR = "@creator:x.org";
const MOD = "@mod:x.org";
const ALICE = "@alice:x.org";
const BOB = "@bob:x.org";
const EVE = "@eve:x.org";

let n = 0;
function ev(type: string, sender: string, content: Record<string, any>, state_key?: string): AuthEvent {
  n += 1;
  return {
    event_id: `$e${n}`,
    room_id: ROOM,
    type,
    sender,
    content,
    ...(state_key === undefined ? {} : { state_key }),
  };
}
const member = (user: string, membership: string, sender = user, extra: Record<string, any> = {}) =>
  ev("m.room.member", sender, { membership, ...extra }, user);

function createEvent(version: string): AuthEvent {
  return ev(
    "m.room.create",
    CREATOR,
    version === "10" ? { creator: CREATOR, room_version: "10" } : { room_version: version },
    "",
  );
}

function stateOf(events: AuthEvent[]): Map<StateKey, AuthEvent> {
  return new Map(events.map((e) => [stateKey(e.type, e.state_key ?? ""), e]));
}

/** A room after a typical private-chat setup: creator 100, mod 50, alice joined, eve banned. */
function room(version: string, opts: { joinRule?: string; pl?: Record<string, any>; extra?: AuthEvent[] } = {}) {
  return stateOf([
    createEvent(version),
    member(CREATOR, "join"),
    ev("m.room.power_levels", CREATOR, opts.pl ?? { users: { [CREATOR]: 100, [MOD]: 50 } }, ""),
    ev("m.room.join_rules", CREATOR, { join_rule: opts.joinRule ?? "invite" }, ""),
    member(MOD, "join"),
    member(ALICE, "join"),
    member(EVE, "ban", CREATOR),
    ...(opts.extra ?? []),
  ]);
}

type Case = [name: string, event: AuthCheckEvent, state: Map<StateKey, AuthEvent>, allowed: boolean | RegExp];

function run(version: string, cases: Case[]) {
  for (const [name, event, state, want] of cases) {
    const got = checkAuth(event, state, version);
    if (want === true) assert.equal(got, null, `v${version} ${name}: expected allow, got '${got}'`);
    else {
      assert.notEqual(got, null, `v${version} ${name}: expected reject`);
      if (want instanceof RegExp) assert.match(got!, want, `v${version} ${name}`);
    }
  }
}

test("create event rules (rule 1), v10 vs v11", () => {
  const c = (content: Record<string, any>, extra: Partial<AuthCheckEvent> = {}) => ({
    ...ev("m.room.create", CREATOR, content, ""),
    ...extra,
  });
  run("10", [
    ["v10 create with creator", c({ creator: CREATOR, room_version: "10" }), new Map(), true],
    ["v10 create without creator", c({ room_version: "10" }), new Map(), /creator/],
    ["unknown room_version", c({ creator: CREATOR, room_version: "999" }), new Map(), /room version/],
    ["prev_events present", c({ creator: CREATOR }, { prev_events: ["$x"] }), new Map(), /prev_events/],
    ["room domain differs from sender", c({ creator: CREATOR }, { room_id: "!r:other.org" }), new Map(), /domain/],
  ]);
  run("11", [
    ["v11 create without creator", c({ room_version: "11" }), new Map(), true],
    ["v11 create, empty prev_events", c({}, { prev_events: [] }), new Map(), true],
  ]);
  // Rule 1 is on the type: an m.room.create without a state key (a message event) never passes as a plain event.
  for (const v of ["10", "11"]) {
    const msg = ev("m.room.create", ALICE, { room_version: v }, undefined);
    const keyed = ev("m.room.create", ALICE, { room_version: v }, "x");
    run(v, [
      ["create as a message event", { ...msg, prev_events: ["$x"] }, room(v), /state event/],
      ["create as a message event, no prev_events", msg, room(v), /state event/],
      ["create with another state key", { ...keyed, prev_events: ["$x"] }, room(v), /state event/],
    ]);
  }
});

test("creator's first join (rule 4.3.1)", () => {
  for (const v of ["10", "11"]) {
    const create = createEvent(v);
    const only = stateOf([create]);
    run(v, [
      ["creator joins after create", member(CREATOR, "join"), only, true],
      [
        "creator joins, prev_events = [create]",
        { ...member(CREATOR, "join"), prev_events: [create.event_id] },
        only,
        true,
      ],
      [
        "creator joins, prev_events elsewhere",
        { ...member(CREATOR, "join"), prev_events: ["$other"] },
        only,
        /invite only/,
      ],
      ["someone else joins first", member(ALICE, "join"), only, /invite only/],
      ["no create event at all", member(CREATOR, "join"), new Map(), /m\.room\.create/],
    ]);
  }
  // v11: the creator is the create event's sender; a 'creator' key in content means nothing.
  const fake = stateOf([ev("m.room.create", CREATOR, { creator: ALICE, room_version: "11" }, "")]);
  run("11", [["v11 ignores content.creator", member(ALICE, "join"), fake, /invite only/]]);
  run("11", [["v11 sender is creator", member(CREATOR, "join"), fake, true]]);
});

test("sending events: membership, required power levels, state_key ownership (rules 5, 7, 8)", () => {
  for (const v of ["10", "11"]) {
    const s = room(v);
    run(v, [
      ["member sends message", ev("m.room.message", ALICE, { body: "hi" }), s, true],
      ["non-member sends message", ev("m.room.message", BOB, { body: "hi" }), s, /not joined/],
      ["banned user sends message", ev("m.room.message", EVE, { body: "hi" }), s, /not joined/],
      ["user 0 sets room name (state_default 50)", ev("m.room.name", ALICE, { name: "n" }, ""), s, /power level 50/],
      ["mod sets room name", ev("m.room.name", MOD, { name: "n" }, ""), s, true],
      ["state_key '@other' by '@me'", ev("org.example.s", CREATOR, {}, BOB), s, /state_key/],
      ["state_key '@me' by '@me'", ev("org.example.s", CREATOR, {}, CREATOR), s, true],
      [
        "events map raises a message type",
        ev("m.room.message", ALICE, {}),
        room(v, { pl: { users: { [CREATOR]: 100 }, events: { "m.room.message": 10 } } }),
        /power level 10/,
      ],
      [
        "events_default raised",
        ev("m.custom", ALICE, {}),
        room(v, { pl: { users: { [CREATOR]: 100 }, events_default: 1 } }),
        /power level 1/,
      ],
      ["third_party_invite with invite level", ev("m.room.third_party_invite", ALICE, {}, "tok"), s, true],
      [
        "third_party_invite below invite level",
        ev("m.room.third_party_invite", ALICE, {}, "tok"),
        room(v, { pl: { users: { [CREATOR]: 100 }, invite: 50 } }),
        /invite/,
      ],
      ["redaction by a member (authorised later)", { ...ev("m.room.redaction", ALICE, {}), redacts: "$e1" }, s, true],
    ]);
  }
});

test("power levels changes (rule 9)", () => {
  const pl = (content: Record<string, any>, sender = CREATOR) => ev("m.room.power_levels", sender, content, "");
  const base = { users: { [CREATOR]: 100, [MOD]: 50 } };
  for (const v of ["10", "11"]) {
    const s = room(v);
    run(v, [
      ["creator promotes alice", pl({ users: { ...base.users, [ALICE]: 50 } }), s, true],
      ["user without power changes levels", pl({ ...base, ban: 0 }, ALICE), s, /needs power level 50/],
      [
        "mod allowed to send PL raises alice above self",
        pl({ users: { ...base.users, [ALICE]: 60 } }, MOD),
        room(v, { pl: { ...base, events: { "m.room.power_levels": 50 } } }),
        /raise/,
      ],
      [
        "mod raises alice to own level",
        pl({ users: { ...base.users, [ALICE]: 50 }, events: { "m.room.power_levels": 50 } }, MOD),
        room(v, { pl: { ...base, events: { "m.room.power_levels": 50 } } }),
        true,
      ],
      [
        "mod demotes an equal",
        pl({ users: { [CREATOR]: 100, [MOD]: 50, "@mod2:x.org": 0 }, events: { "m.room.power_levels": 50 } }, MOD),
        room(v, { pl: { users: { ...base.users, "@mod2:x.org": 50 }, events: { "m.room.power_levels": 50 } } }),
        /not below yours/,
      ],
      [
        "mod demotes self",
        pl({ users: { [CREATOR]: 100, [MOD]: 10 }, events: { "m.room.power_levels": 50 } }, MOD),
        room(v, { pl: { ...base, events: { "m.room.power_levels": 50 } } }),
        true,
      ],
      [
        "mod changes a level above own",
        pl({ ...base, ban: 40, kick: 40, events: { "m.room.power_levels": 50 } }, MOD),
        room(v, { pl: { ...base, ban: 60, events: { "m.room.power_levels": 50 } } }),
        /'ban'/,
      ],
      [
        "mod removes an events entry above own",
        pl({ ...base, events: { "m.room.power_levels": 50 } }, MOD),
        room(v, { pl: { ...base, events: { "m.room.power_levels": 50, "m.room.tombstone": 100 } } }),
        /m\.room\.tombstone/,
      ],
      ["creator sets ban above own level", pl({ ...base, ban: 101 }), s, /'ban'/],
      ["creator sets notifications above own", pl({ ...base, notifications: { room: 101 } }), s, /notifications/],
      ["string level (v10+ integers only)", pl({ ...base, ban: "50" }), s, /integer/],
      ["float level", pl({ ...base, kick: 1.5 }), s, /integer/],
      ["string in users", pl({ users: { [CREATOR]: "100" } }), s, /users/],
      ["string in events", pl({ ...base, events: { x: "1" } }), s, /events/],
      ["users key not a user ID", pl({ users: { [CREATOR]: 100, notauser: 1 } }), s, /user ID/],
      [
        "first power levels event is allowed",
        pl({ users: { [CREATOR]: 100 }, ban: 100 }),
        stateOf([createEvent(v), member(CREATOR, "join")]),
        true,
      ],
    ]);
  }
});

test("invites (rule 4.4)", () => {
  for (const v of ["10", "11"]) {
    const s = room(v);
    run(v, [
      ["member invites (invite level 0)", member(BOB, "invite", ALICE), s, true],
      [
        "invite level 50 blocks user 0",
        member(BOB, "invite", ALICE),
        room(v, { pl: { users: { [CREATOR]: 100 }, invite: 50 } }),
        /invite/,
      ],
      ["non-member invites", member(ALICE, "invite", BOB), room(v), /not joined/],
      ["invite a joined user", member(MOD, "invite", ALICE), s, /already/],
      ["invite a banned user", member(EVE, "invite", CREATOR), s, /banned/],
    ]);
  }
});

test("third-party invite redemption (rule 4.4.1)", () => {
  const idKey = generateSigningKey();
  const signed = signJson({ mxid: BOB, token: "tok", sender: ALICE }, "id.example", idKey);
  const tpi = ev("m.room.third_party_invite", ALICE, { public_key: idKey.publicKeyBase64, display_name: "b" }, "tok");
  const s = room("11", { extra: [tpi] });
  const inv = (sig: Record<string, any>, sender = ALICE, target = BOB) =>
    member(target, "invite", sender, { third_party_invite: { display_name: "b", signed: sig } });
  const otherKey = generateSigningKey();
  run("11", [
    ["valid signature", inv(signed), s, true],
    [
      "key listed in public_keys",
      inv(signed),
      room("11", {
        extra: [
          ev("m.room.third_party_invite", ALICE, { public_keys: [{ public_key: idKey.publicKeyBase64 }] }, "tok"),
        ],
      }),
      true,
    ],
    ["signed by another key", inv(signJson({ mxid: BOB, token: "tok" }, "id.example", otherKey)), s, /signature/],
    ["tampered signed block", inv({ ...signed, mxid: BOB, extra: 1 }), s, /signature/],
    ["mxid is not the target", inv(signed, ALICE, "@carol:x.org"), s, /another user/],
    ["redeemed by someone else", inv(signed, MOD), s, /sender/],
    ["no such token", inv({ ...signed, token: "nope" }), s, /no matching/],
    ["no signed block", member(BOB, "invite", ALICE, { third_party_invite: {} }), s, /signed/],
    ["banned target", inv({ ...signed, mxid: EVE }, ALICE, EVE), s, /banned/],
  ]);
  assert.deepEqual(authTypesFor(inv(signed)), [
    ["m.room.create", ""],
    ["m.room.power_levels", ""],
    ["m.room.member", ALICE],
    ["m.room.member", BOB],
    ["m.room.join_rules", ""],
    ["m.room.third_party_invite", "tok"],
  ]);
});

test("joins and join rules (rule 4.3)", () => {
  for (const v of ["10", "11"]) {
    const invited = room(v, { extra: [member(BOB, "invite", ALICE)] });
    run(v, [
      ["join invite-only room without invite", member(BOB, "join"), room(v), /invite only/],
      ["join invite-only room with invite", member(BOB, "join"), invited, true],
      [
        "join knock room with invite",
        member(BOB, "join"),
        room(v, { joinRule: "knock", extra: [member(BOB, "invite", ALICE)] }),
        true,
      ],
      ["join public room", member(BOB, "join"), room(v, { joinRule: "public" }), true],
      ["banned user joins public room", member(EVE, "join"), room(v, { joinRule: "public" }), /banned/],
      ["join on behalf of another", member(BOB, "join", ALICE), room(v, { joinRule: "public" }), /behalf/],
      ["rejoin (profile change) while joined", member(ALICE, "join"), room(v), true],
      ["join a private room", member(BOB, "join"), room(v, { joinRule: "private" }), /join rule/],
      ["member event without membership", ev("m.room.member", BOB, {}, BOB), room(v), /membership/],
      ["unknown membership", member(BOB, "dance"), room(v), /unknown membership/],
    ]);
  }
});

test("restricted joins with join_authorised_via_users_server", () => {
  for (const v of ["10", "11"]) {
    for (const rule of ["restricted", "knock_restricted"]) {
      const s = room(v, { joinRule: rule, pl: { users: { [CREATOR]: 100, [MOD]: 50 }, invite: 50 } });
      const via = (u: string) => member(BOB, "join", BOB, { join_authorised_via_users_server: u });
      run(v, [
        [`${rule}: no authorising user`, member(BOB, "join"), s, /authorising/],
        [`${rule}: authorised by mod`, via(MOD), s, true],
        [`${rule}: authoriser below invite level`, via(ALICE), s, /cannot authorise/],
        [`${rule}: authoriser not in room`, via("@ghost:x.org"), s, /cannot authorise/],
        [
          `${rule}: already invited`,
          member(BOB, "join"),
          room(v, { joinRule: rule, extra: [member(BOB, "invite", ALICE)] }),
          true,
        ],
      ]);
      assert.match(checkAuth(via(MOD), s, v, { isSignedBy: () => false }) ?? "", /not signed by x\.org/);
      assert.equal(checkAuth(via(MOD), s, v, { isSignedBy: (srv) => srv === "x.org" }), null);
      assert.deepEqual(authTypesFor(via(MOD)).at(-1), ["m.room.member", MOD]);
    }
  }
});

test("leave, kick, ban, unban (rules 4.5, 4.6)", () => {
  for (const v of ["10", "11"]) {
    const s = room(v);
    run(v, [
      ["member leaves", member(ALICE, "leave"), s, true],
      ["invited user rejects invite", member(BOB, "leave"), room(v, { extra: [member(BOB, "invite", ALICE)] }), true],
      ["non-member leaves", member(BOB, "leave"), s, /not in the room/],
      ["banned user 'leaves'", member(EVE, "leave"), s, /not in the room/],
      ["member kicks member", member(MOD, "leave", ALICE), s, /kick/],
      ["mod kicks member", member(ALICE, "leave", MOD), s, true],
      ["mod kicks creator", member(CREATOR, "leave", MOD), s, /kick/],
      ["non-member kicks", member(ALICE, "leave", BOB), s, /not joined/],
      ["member bans", member(MOD, "ban", ALICE), s, /ban/],
      ["mod bans member", member(ALICE, "ban", MOD), s, true],
      ["mod bans an outsider", member(BOB, "ban", MOD), s, true],
      ["mod bans creator", member(CREATOR, "ban", MOD), s, /ban/],
      ["mod unbans (ban and kick 50)", member(EVE, "leave", MOD), s, true],
      [
        "unban needs ban level",
        member(EVE, "leave", MOD),
        room(v, { pl: { users: { [CREATOR]: 100, [MOD]: 50 }, ban: 100 } }),
        /unban/,
      ],
    ]);
  }
});

test("knocking (rule 4.7)", () => {
  for (const v of ["10", "11"]) {
    run(v, [
      ["knock on knock room", member(BOB, "knock"), room(v, { joinRule: "knock" }), true],
      ["knock on knock_restricted room", member(BOB, "knock"), room(v, { joinRule: "knock_restricted" }), true],
      ["knock on public room", member(BOB, "knock"), room(v, { joinRule: "public" }), /knocking/],
      ["knock on behalf of another", member(BOB, "knock", ALICE), room(v, { joinRule: "knock" }), /behalf/],
      ["banned user knocks", member(EVE, "knock"), room(v, { joinRule: "knock" }), /ban/],
      ["joined user knocks", member(ALICE, "knock"), room(v, { joinRule: "knock" }), /join/],
      ["knocker withdraws", member(BOB, "leave"), room(v, { joinRule: "knock", extra: [member(BOB, "knock")] }), true],
    ]);
  }
});

test("federation flag, foreign auth events, unsupported versions", () => {
  const nofed = stateOf([
    ev("m.room.create", CREATOR, { room_version: "11", "m.federate": false }, ""),
    member(CREATOR, "join"),
    ev("m.room.join_rules", CREATOR, { join_rule: "public" }, ""),
  ]);
  run("11", [
    ["remote user joins unfederated room", member("@bob:other.org", "join"), nofed, /not federated/],
    ["local user joins unfederated room", member(BOB, "join"), nofed, true],
  ]);
  const foreign = room("11");
  foreign.set(stateKey("m.room.member", ALICE), { ...member(ALICE, "join"), room_id: "!other:x.org" });
  run("11", [["auth event from another room", ev("m.room.message", ALICE, {}), foreign, /another room/]]);
  assert.match(checkAuth(ev("m.room.message", ALICE, {}), room("11"), "9") ?? "", /unsupported room version/);
  assert.match(
    checkAuth({ ...ev("m.room.message", ALICE, {}), content: null as any }, room("11"), "11") ?? "",
    /content/,
  );
});

test("auth events selection", () => {
  assert.deepEqual(authTypesFor(ev("m.room.create", CREATOR, {}, "")), []);
  assert.deepEqual(authTypesFor(ev("m.room.message", ALICE, {})), [
    ["m.room.create", ""],
    ["m.room.power_levels", ""],
    ["m.room.member", ALICE],
  ]);
  assert.deepEqual(authTypesFor(member(ALICE, "join")), [
    ["m.room.create", ""],
    ["m.room.power_levels", ""],
    ["m.room.member", ALICE],
    ["m.room.join_rules", ""],
  ]);
  assert.deepEqual(authTypesFor(member(BOB, "ban", MOD)), [
    ["m.room.create", ""],
    ["m.room.power_levels", ""],
    ["m.room.member", MOD],
    ["m.room.member", BOB],
  ]);
});
