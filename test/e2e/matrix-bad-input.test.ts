/**
 * Bad input gets the right Matrix error (errcode + status), never a 500, and the server stays up:
 * malformed JSON, wrong types, unknown endpoints, missing/invalid tokens, oversized bodies and uploads,
 * invalid room and user IDs, repeated transaction IDs and forbidden state changes.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { type ApiOptions, type ApiResponse, api, enc, ok, registerUser, type Session } from "./helpers/client.ts";
import { ChildHomeserver } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const MAX_JSON = 200 * 1024;
const MAX_UPLOAD = 1024 * 1024;

describe("bad input gets Matrix errors, never a 500", () => {
  let hs: ChildHomeserver;
  let alice: Session;
  let bob: Session;
  let carol: Session;
  let roomId = "";

  /** Every request of this file goes through here: nothing may answer 5xx. */
  const call = async (method: string, path: string, opts: ApiOptions = {}): Promise<ApiResponse> => {
    const r = await api(hs.url, method, path, opts);
    assert.ok(r.status < 500, `${method} ${path} -> ${r.status} ${r.text.slice(0, 300)}`);
    return r;
  };
  /** Expect one of `statuses` and one of `errcodes`, with a Matrix error body. */
  const expectErr = async (method: string, path: string, opts: ApiOptions, statuses: number[], errcodes: string[]) => {
    const r = await call(method, path, opts);
    assert.ok(
      statuses.includes(r.status),
      `${method} ${path}: status ${r.status}, expected ${statuses}: ${r.text.slice(0, 300)}`,
    );
    assert.ok(r.json && typeof r.json.errcode === "string", `${method} ${path}: no errcode in ${r.text.slice(0, 300)}`);
    assert.ok(errcodes.includes(r.json.errcode), `${method} ${path}: errcode ${r.json.errcode}, expected ${errcodes}`);
    assert.equal(typeof r.json.error, "string");
    assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
    return r;
  };
  const BAD = ["M_BAD_JSON", "M_INVALID_PARAM", "M_NOT_JSON", "M_MISSING_PARAM"];

  before(async () => {
    hs = await ChildHomeserver.start({
      matrix: { media: { maxUploadBytes: MAX_UPLOAD }, limits: { maxJsonBodyBytes: MAX_JSON } },
    });
    const tag = randomBytes(3).toString("hex");
    alice = await registerUser(hs.url, `alice${tag}`);
    bob = await registerUser(hs.url, `bob${tag}`);
    carol = await registerUser(hs.url, `carol${tag}`);
    roomId = (
      await ok(hs.url, "POST", `${C}/createRoom`, {
        token: alice.accessToken,
        body: { name: "bad input", preset: "private_chat" },
      })
    ).room_id;
    await ok(hs.url, "POST", `${C}/rooms/${enc(roomId)}/invite`, {
      token: alice.accessToken,
      body: { user_id: bob.userId },
    });
    await ok(hs.url, "POST", `${C}/join/${enc(roomId)}`, { token: bob.accessToken, body: {} });
  });
  after(async () => {
    const errors = hs?.errorLines() ?? [];
    await hs?.dispose();
    assert.deepEqual(errors, [], "the homeserver logged internal errors");
  });

  it("malformed JSON bodies answer M_NOT_JSON / M_BAD_JSON with 400", async () => {
    const t = alice.accessToken;
    await expectErr("POST", `${C}/createRoom`, { token: t, body: "{not json" }, [400], ["M_NOT_JSON"]);
    await expectErr("POST", `${C}/createRoom`, { token: t, body: '{"name": "x",}' }, [400], ["M_NOT_JSON"]);
    await expectErr(
      "POST",
      `${C}/createRoom`,
      { token: t, body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) },
      [400],
      ["M_NOT_JSON"],
    );
    for (const body of ["[]", '"string"', "42", "null", "true"]) {
      await expectErr("POST", `${C}/createRoom`, { token: t, body }, [400], ["M_BAD_JSON", "M_NOT_JSON"]);
    }
    await expectErr(
      "PUT",
      `${C}/rooms/${enc(roomId)}/send/m.room.message/nj1`,
      { token: t, body: "[1,2" },
      [400],
      ["M_NOT_JSON"],
    );
    await expectErr("POST", `${C}/login`, { body: "}{" }, [400], ["M_NOT_JSON"]);
  });

  it("deeply nested JSON is refused with 400, not a stack overflow", async () => {
    const t = alice.accessToken;
    const deep = '{"a":'.repeat(10_000) + "1" + "}".repeat(10_000);
    const codes = ["M_BAD_JSON", "M_NOT_JSON", "M_TOO_LARGE"];
    await expectErr(
      "PUT",
      `${C}/rooms/${enc(roomId)}/send/m.room.message/deep1`,
      { token: t, body: deep },
      [400, 413],
      codes,
    );
    await expectErr(
      "PUT",
      `${C}/rooms/${enc(roomId)}/state/org.example.deep/`,
      { token: t, body: deep },
      [400, 413],
      codes,
    );
    await expectErr(
      "PUT",
      `${C}/user/${enc(alice.userId)}/account_data/org.example.deep`,
      { token: t, body: deep },
      [400, 413],
      codes,
    );
  });

  it("wrong types in request bodies answer 400", async () => {
    const t = alice.accessToken;
    const r = enc(roomId);
    await expectErr("POST", `${C}/createRoom`, { token: t, body: { name: 5 } }, [400], BAD);
    await expectErr("POST", `${C}/createRoom`, { token: t, body: { invite: "not-a-list" } }, [400], BAD);
    await expectErr("POST", `${C}/createRoom`, { token: t, body: { preset: "nope" } }, [400], BAD);
    await expectErr("POST", `${C}/createRoom`, { token: t, body: { initial_state: [{ type: 1 }] } }, [400], BAD);
    await expectErr(
      "POST",
      `${C}/createRoom`,
      { token: t, body: { room_version: "999" } },
      [400],
      ["M_UNSUPPORTED_ROOM_VERSION"],
    );
    await expectErr("POST", `${C}/login`, { body: { type: 5, password: [] } }, [400], [...BAD, "M_UNKNOWN"]);
    await expectErr(
      "POST",
      `${C}/login`,
      { body: { type: "m.login.password", identifier: "alice", password: 1 } },
      [400],
      [...BAD, "M_UNKNOWN"],
    );
    await expectErr(
      "POST",
      `${C}/register`,
      { body: { username: 5, password: "x", auth: { type: "m.login.dummy" } } },
      [400],
      [...BAD, "M_INVALID_USERNAME"],
    );
    await expectErr(
      "PUT",
      `${C}/rooms/${r}/typing/${enc(alice.userId)}`,
      { token: t, body: { typing: "yes" } },
      [400],
      BAD,
    );
    await expectErr(
      "PUT",
      `${C}/rooms/${r}/typing/${enc(alice.userId)}`,
      { token: t, body: { typing: true, timeout: "long" } },
      [400],
      BAD,
    );
    await expectErr(
      "PUT",
      `${C}/profile/${enc(alice.userId)}/displayname`,
      { token: t, body: { displayname: 5 } },
      [400],
      BAD,
    );
    await expectErr(
      "POST",
      `${C}/user/${enc(alice.userId)}/filter`,
      { token: t, body: { room: { timeline: { limit: "ten" } } } },
      [400],
      BAD,
    );
    await expectErr(
      "POST",
      `${C}/user/${enc(alice.userId)}/filter`,
      { token: t, body: { event_format: "xml" } },
      [400],
      BAD,
    );
    await expectErr("POST", `${C}/rooms/${r}/invite`, { token: t, body: { user_id: 42 } }, [400], BAD);
    await expectErr("POST", `${C}/rooms/${r}/receipt/m.bogus/$x`, { token: t, body: {} }, [400], BAD);
    await expectErr("GET", `${C}/rooms/${r}/messages?dir=sideways`, { token: t }, [400], BAD);
    await expectErr("GET", `${C}/rooms/${r}/messages?dir=b&limit=lots`, { token: t }, [400], BAD);
    await expectErr("GET", `${C}/sync?timeout=soon`, { token: t }, [400], BAD);
    await expectErr("GET", `${C}/sync?filter=${enc("{broken")}`, { token: t }, [400], BAD);
    await expectErr("GET", `${C}/sync?since=garbage&timeout=0`, { token: t }, [400], BAD);
    // Event content must be canonical-JSON-representable: no floats beyond safe integers, no huge numbers.
    await expectErr(
      "PUT",
      `${C}/rooms/${r}/send/m.room.message/bigint`,
      { token: t, body: '{"msgtype":"m.text","body":"x","n":1e400}' },
      [400],
      BAD,
    );
    await expectErr(
      "PUT",
      `${C}/rooms/${r}/send/m.room.message/unsafe`,
      { token: t, body: { msgtype: "m.text", body: "x", n: 2 ** 60 } },
      [400],
      BAD,
    );
  });

  it("unknown endpoints and methods answer M_UNRECOGNIZED (404 / 405)", async () => {
    await expectErr("GET", `${C}/no/such/endpoint`, {}, [404], ["M_UNRECOGNIZED"]);
    await expectErr("GET", "/_matrix/client/v9/versions", {}, [404], ["M_UNRECOGNIZED"]);
    await expectErr("GET", "/nothing-here", {}, [404], ["M_UNRECOGNIZED"]);
    await expectErr("DELETE", `${C}/sync`, { token: alice.accessToken }, [404, 405], ["M_UNRECOGNIZED"]);
    await expectErr("PATCH", `${C}/createRoom`, { token: alice.accessToken }, [404, 405], ["M_UNRECOGNIZED"]);
  });

  it("missing, invalid and malformed access tokens answer 401", async () => {
    await expectErr("GET", `${C}/sync`, {}, [401], ["M_MISSING_TOKEN"]);
    await expectErr("GET", `${C}/account/whoami`, { token: "syt_nope" }, [401], ["M_UNKNOWN_TOKEN"]);
    await expectErr("GET", `${C}/account/whoami?access_token=nope`, {}, [401], ["M_UNKNOWN_TOKEN"]);
    await expectErr(
      "GET",
      `${C}/account/whoami`,
      { headers: { Authorization: "Basic Zm9vOmJhcg==" } },
      [401],
      ["M_MISSING_TOKEN", "M_UNKNOWN_TOKEN"],
    );
    await expectErr("POST", `${C}/createRoom`, { body: {} }, [401], ["M_MISSING_TOKEN"]);
    await expectErr(
      "POST",
      "/_matrix/client/v1/media/download/localhost/whatever",
      {},
      [401, 404, 405],
      ["M_MISSING_TOKEN", "M_UNRECOGNIZED"],
    );
    await expectErr("GET", "/_matrix/client/v1/media/download/localhost/whatever", {}, [401], ["M_MISSING_TOKEN"]);
    const me = await ok(hs.url, "GET", `${C}/account/whoami?access_token=${enc(alice.accessToken)}`);
    assert.equal(me.user_id, alice.userId);
  });

  it("oversized JSON bodies, events and uploads answer 413 M_TOO_LARGE", async () => {
    const t = alice.accessToken;
    const big = JSON.stringify({ msgtype: "m.text", body: "x".repeat(MAX_JSON + 10) });
    await expectErr(
      "PUT",
      `${C}/rooms/${enc(roomId)}/send/m.room.message/big1`,
      { token: t, body: big },
      [413],
      ["M_TOO_LARGE"],
    );
    // Without a Content-Length (chunked): the limit must still hold while streaming. The server answers 413 and
    // closes (a chunked body is not drained): a client still writing may see the close (EPIPE) before the answer.
    const chunked = await fetch(`${hs.url}${C}/rooms/${enc(roomId)}/send/m.room.message/big2`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/json" },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 30; i++) c.enqueue(new TextEncoder().encode(i === 0 ? '{"body":"' : "y".repeat(10_000)));
          c.enqueue(new TextEncoder().encode('"}'));
          c.close();
        },
      }),
      duplex: "half",
    } as RequestInit).catch((e: Error & { cause?: { code?: string } }) => {
      assert.ok(["EPIPE", "ECONNRESET"].includes(e.cause?.code ?? ""), `chunked upload: ${e.cause?.code ?? e}`);
      return null;
    });
    if (chunked) {
      assert.equal(chunked.status, 413);
      assert.equal((await chunked.json()).errcode, "M_TOO_LARGE");
    }
    // Either way nothing was stored: the same transaction ID with a small body makes a new event.
    const small = await ok(hs.url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/big2`, {
      token: t,
      body: { msgtype: "m.text", body: "small" },
    });
    const stored = await ok(hs.url, "GET", `${C}/rooms/${enc(roomId)}/event/${enc(small.event_id)}`, { token: t });
    assert.equal(stored.content.body, "small");
    // An event over 65,536 bytes (the spec's PDU limit) is refused even though the body limit allows it.
    const bigEvent = { msgtype: "m.text", body: "z".repeat(70_000) };
    await expectErr(
      "PUT",
      `${C}/rooms/${enc(roomId)}/send/m.room.message/big3`,
      { token: t, body: bigEvent },
      [413, 400],
      ["M_TOO_LARGE", "M_BAD_JSON"],
    );
    const up = await call("POST", "/_matrix/media/v3/upload?filename=big.bin", {
      token: t,
      body: Buffer.alloc(MAX_UPLOAD + 1, 7),
      headers: { "Content-Type": "application/octet-stream" },
    });
    assert.equal(up.status, 413);
    assert.equal(up.json?.errcode, "M_TOO_LARGE");
    const fits = await ok(hs.url, "POST", "/_matrix/media/v3/upload?filename=ok.bin", {
      token: t,
      body: Buffer.alloc(MAX_UPLOAD, 7),
      headers: { "Content-Type": "application/octet-stream" },
    });
    assert.match(fits.content_uri, /^mxc:\/\//);
  });

  it("invalid and unknown room and user IDs answer 400 / 403 / 404 with a Matrix errcode", async () => {
    const t = alice.accessToken;
    await expectErr(
      "GET",
      `${C}/rooms/not-a-room/messages?dir=b`,
      { token: t },
      [400, 403, 404],
      ["M_INVALID_PARAM", "M_FORBIDDEN", "M_NOT_FOUND"],
    );
    await expectErr(
      "PUT",
      `${C}/rooms/${enc("!unknown:localhost")}/send/m.room.message/u1`,
      { token: t, body: { msgtype: "m.text", body: "x" } },
      [403, 404],
      ["M_FORBIDDEN", "M_NOT_FOUND"],
    );
    await expectErr(
      "POST",
      `${C}/join/${enc("!unknown:localhost")}`,
      { token: t, body: {} },
      [403, 404],
      ["M_FORBIDDEN", "M_NOT_FOUND"],
    );
    await expectErr("POST", `${C}/join/${enc("#nope:localhost")}`, { token: t, body: {} }, [404], ["M_NOT_FOUND"]);
    await expectErr(
      "POST",
      `${C}/join/garbage`,
      { token: t, body: {} },
      [400, 404],
      ["M_INVALID_PARAM", "M_NOT_FOUND", "M_UNRECOGNIZED"],
    );
    await expectErr(
      "POST",
      `${C}/rooms/${enc(roomId)}/invite`,
      { token: t, body: { user_id: "not-a-user" } },
      [400],
      BAD,
    );
    await expectErr("GET", `${C}/profile/not-a-user`, { token: t }, [400, 404], ["M_INVALID_PARAM", "M_NOT_FOUND"]);
    await expectErr("GET", `${C}/profile/${enc("@nobody:localhost")}`, { token: t }, [404], ["M_NOT_FOUND"]);
    await expectErr("GET", `${C}/rooms/${enc(roomId)}/event/${enc("$nope")}`, { token: t }, [404], ["M_NOT_FOUND"]);
    await expectErr(
      "PUT",
      `${C}/profile/${enc(bob.userId)}/displayname`,
      { token: t, body: { displayname: "hijack" } },
      [403],
      ["M_FORBIDDEN"],
    );
    await expectErr(
      "PUT",
      `${C}/user/${enc(bob.userId)}/account_data/x.y`,
      { token: t, body: {} },
      [403],
      ["M_FORBIDDEN"],
    );
    await expectErr(
      "POST",
      `${C}/register`,
      { body: { username: "Bad Name!", password: "x", auth: { type: "m.login.dummy" } } },
      [400],
      ["M_INVALID_USERNAME"],
    );
    await expectErr(
      "POST",
      `${C}/register`,
      { body: { username: alice.userId.slice(1).split(":")[0], password: "x", auth: { type: "m.login.dummy" } } },
      [400],
      ["M_USER_IN_USE"],
    );
  });

  it("a repeated transaction ID returns the same event ID and stores one event", async () => {
    const t = alice.accessToken;
    const path = `${C}/rooms/${enc(roomId)}/send/m.room.message/txn-repeat-1`;
    const body = { msgtype: "m.text", body: "idempotent" };
    const first = await ok(hs.url, "PUT", path, { token: t, body });
    const again = await Promise.all([1, 2, 3].map(() => ok(hs.url, "PUT", path, { token: t, body })));
    for (const a of again) assert.equal(a.event_id, first.event_id);
    const other = await ok(hs.url, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/txn-repeat-2`, {
      token: t,
      body,
    });
    assert.notEqual(other.event_id, first.event_id);
    const page = await ok(hs.url, "GET", `${C}/rooms/${enc(roomId)}/messages?dir=b&limit=50`, { token: t });
    assert.equal(page.chunk.filter((e: any) => e.content?.body === "idempotent").length, 2);
    // Two concurrent first sends of one txnId must also give one event.
    const p2 = `${C}/rooms/${enc(roomId)}/send/m.room.message/txn-race`;
    const race = await Promise.all(
      [1, 2, 3, 4].map(() => ok(hs.url, "PUT", p2, { token: t, body: { msgtype: "m.text", body: "race" } })),
    );
    assert.equal(new Set(race.map((r) => r.event_id)).size, 1);
  });

  it("forbidden state changes and membership transitions answer 403 M_FORBIDDEN", async () => {
    const r = enc(roomId);
    const b = bob.accessToken;
    const F = ["M_FORBIDDEN"];
    await expectErr("PUT", `${C}/rooms/${r}/state/m.room.name/`, { token: b, body: { name: "mine now" } }, [403], F);
    await expectErr(
      "PUT",
      `${C}/rooms/${r}/state/m.room.power_levels/`,
      { token: b, body: { users: { [bob.userId]: 100 } } },
      [403],
      F,
    );
    await expectErr(
      "PUT",
      `${C}/rooms/${r}/state/m.room.join_rules/`,
      { token: b, body: { join_rule: "public" } },
      [403],
      F,
    );
    await expectErr(
      "PUT",
      `${C}/rooms/${r}/state/m.room.create/`,
      { token: alice.accessToken, body: { creator: alice.userId } },
      [403, 400],
      F.concat("M_BAD_JSON"),
    );
    await expectErr(
      "PUT",
      `${C}/rooms/${r}/state/m.room.member/${enc(alice.userId)}`,
      { token: b, body: { membership: "leave" } },
      [403],
      F,
    );
    await expectErr("POST", `${C}/rooms/${r}/kick`, { token: b, body: { user_id: alice.userId } }, [403], F);
    await expectErr("POST", `${C}/rooms/${r}/ban`, { token: b, body: { user_id: alice.userId } }, [403], F);
    // Carol is not in the room and it is invite-only.
    await expectErr("POST", `${C}/join/${r}`, { token: carol.accessToken, body: {} }, [403], F);
    await expectErr(
      "PUT",
      `${C}/rooms/${r}/send/m.room.message/c1`,
      { token: carol.accessToken, body: { msgtype: "m.text", body: "hi" } },
      [403],
      F,
    );
    await expectErr("GET", `${C}/rooms/${r}/messages?dir=b`, { token: carol.accessToken }, [403], F);
    await expectErr("GET", `${C}/rooms/${r}/state`, { token: carol.accessToken }, [403], F);
    await expectErr(
      "PUT",
      `${C}/rooms/${r}/typing/${enc(alice.userId)}`,
      { token: b, body: { typing: true, timeout: 1000 } },
      [403],
      F,
    );
    // A banned user cannot rejoin; only an unban lets them back in.
    await ok(hs.url, "POST", `${C}/rooms/${r}/ban`, {
      token: alice.accessToken,
      body: { user_id: carol.userId, reason: "test" },
    });
    await expectErr(
      "POST",
      `${C}/rooms/${r}/invite`,
      { token: alice.accessToken, body: { user_id: carol.userId } },
      [403],
      F,
    );
    await ok(hs.url, "POST", `${C}/rooms/${r}/unban`, { token: alice.accessToken, body: { user_id: carol.userId } });
    // Bob's power is unchanged by all of that.
    const pl = await ok(hs.url, "GET", `${C}/rooms/${r}/state/m.room.power_levels/`, { token: b });
    assert.equal(pl.users?.[bob.userId] ?? pl.users_default ?? 0, 0);
    const name = await ok(hs.url, "GET", `${C}/rooms/${r}/state/m.room.name/`, { token: b });
    assert.equal(name.name, "bad input");
  });

  it("the server is still up and answers /versions", async () => {
    assert.ok(hs.running);
    const v = await ok(hs.url, "GET", "/_matrix/client/versions");
    assert.ok(Array.isArray(v.versions) && v.versions.length > 0);
  });
});
