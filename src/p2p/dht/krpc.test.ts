import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { encode } from "../bencode.ts";
import { decodeNodes, decodePeer, encodeNodes, encodePeer, randomId } from "./id.ts";
import { decodeMessage, encodeError, encodeQuery, encodeResponse, MAX_DATAGRAM } from "./krpc.ts";

const t = Buffer.from("aa");
const id = randomId();

test("queries round-trip with their arguments (BEP 5's four methods, BEP 43's ro flag)", () => {
  const ih = randomId();
  const ping = decodeMessage(encodeQuery(t, "ping", { id }));
  assert.equal(ping.y, "q");
  assert.ok(ping.y === "q" && ping.q === "ping" && ping.id.equals(id) && !ping.ro);
  const fn = decodeMessage(encodeQuery(t, "find_node", { id, target: ih }, true));
  assert.ok(fn.y === "q" && fn.target?.equals(ih) && fn.ro);
  const gp = decodeMessage(encodeQuery(t, "get_peers", { id, info_hash: ih }));
  assert.ok(gp.y === "q" && gp.infoHash?.equals(ih));
  const ap = decodeMessage(
    encodeQuery(t, "announce_peer", { id, info_hash: ih, port: 6881, token: Buffer.from("tok"), implied_port: 0 }),
  );
  assert.ok(ap.y === "q" && ap.port === 6881 && ap.token?.toString() === "tok" && !ap.impliedPort);
  const implied = decodeMessage(encodeQuery(t, "announce_peer", { id, info_hash: ih, implied_port: 1, token: t }));
  assert.ok(implied.y === "q" && implied.impliedPort, "implied_port needs no port");
});

test("responses and errors round-trip; BEP 5's own example bytes decode", () => {
  const r = decodeMessage(encodeResponse(t, { id, nodes: Buffer.alloc(0) }, encodePeer({ host: "1.2.3.4", port: 5 })));
  assert.ok(r.y === "r" && r.id.equals(id) && Buffer.isBuffer(r.r.nodes));
  const e = decodeMessage(encodeError(t, 201, "A Generic Error Ocurred"));
  assert.deepEqual(e, { y: "e", t, code: 201, message: "A Generic Error Ocurred" });
  const spec = decodeMessage(Buffer.from("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"));
  assert.ok(spec.y === "q" && spec.q === "ping" && spec.id.toString() === "abcdefghij0123456789");
  const specR = decodeMessage(Buffer.from("d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"));
  assert.ok(specR.y === "r" && specR.id.toString() === "mnopqrstuvwxyz123456");
});

test("malformed datagrams decode to `bad` with the right error code, never throw", () => {
  const q = (a: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    decodeMessage(encode({ t, y: "q", q: "announce_peer", a, ...extra } as never));
  const cases: Array<[Buffer | ReturnType<typeof decodeMessage>, number, boolean]> = [
    [decodeMessage(Buffer.from("garbage")), 203, false],
    [decodeMessage(Buffer.alloc(0)), 203, false],
    [decodeMessage(Buffer.alloc(MAX_DATAGRAM + 1, 0x64)), 203, false],
    [decodeMessage(encode([1, 2, 3])), 203, false],
    [decodeMessage(encode({ y: "q", q: "ping", a: { id } })), 203, false], // no t
    [decodeMessage(encode({ t: Buffer.alloc(64), y: "q", q: "ping", a: { id } })), 203, false], // t too long
    [decodeMessage(encode({ t, y: "q", q: "ping", a: { id: 5 } })), 203, true], // id of the wrong type
    [decodeMessage(encode({ t, y: "q", q: "ping", a: { id: Buffer.alloc(19) } })), 203, true],
    [decodeMessage(encode({ t, y: "q", q: "ping" })), 203, true], // no arguments
    [decodeMessage(encode({ t, y: "q", q: "vote", a: { id } })), 204, true], // unknown method
    [decodeMessage(encode({ t, y: "x" })), 203, true],
    [decodeMessage(encode({ t, y: "q", q: "find_node", a: { id, target: "short" } })), 203, true],
    [decodeMessage(encode({ t, y: "q", q: "get_peers", a: { id } })), 203, true],
    [q({ id, info_hash: id, port: 1 }), 203, true], // no token
    [q({ id, info_hash: id, port: 0, token: t }), 203, true],
    [q({ id, info_hash: id, port: 70000, token: t }), 203, true],
    [q({ id, info_hash: id, port: "x", token: t }), 203, true],
    [decodeMessage(encode({ t, y: "r", r: { nodes: Buffer.alloc(26) } })), 203, true], // response without id
  ];
  for (const [m, code, hasT] of cases) {
    assert.ok(!Buffer.isBuffer(m) && m.y === "bad", JSON.stringify(m));
    assert.equal(m.code, code, m.reason);
    assert.equal(m.t !== undefined, hasT, m.reason);
  }
  for (let i = 0; i < 2000; i++) {
    const junk = randomBytes(1 + (i % 300));
    if (i % 3 === 0) junk[0] = 0x64; // 'd': reach the dictionary parser
    assert.doesNotThrow(() => decodeMessage(junk));
  }
});

test("compact node and peer info: 26 and 6 bytes; unusable endpoints and partial entries are dropped", () => {
  const nodes = [
    { id: randomId(), host: "10.1.2.3", port: 6881 },
    { id: randomId(), host: "0.0.0.0", port: 1 },
    { id: randomId(), host: "192.168.0.1", port: 0 },
  ];
  const b = encodeNodes(nodes);
  assert.equal(b.length, 78);
  assert.deepEqual(decodeNodes(Buffer.concat([b, Buffer.alloc(10)])), [nodes[0]]);
  assert.deepEqual(decodePeer(encodePeer({ host: "127.0.0.1", port: 51413 })), { host: "127.0.0.1", port: 51413 });
  assert.equal(decodePeer(Buffer.alloc(5)), undefined);
  assert.equal(decodePeer(7 as never), undefined);
});
