/**
 * A minimal TURN client (RFC 5766 Allocate over UDP, long-term credentials of RFC 5389): enough to ask a real
 * coturn whether it accepts a username/password, without a browser. One UDP socket per call (a second Allocate
 * from the same 5-tuple would be an allocation mismatch).
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";

const COOKIE = 0x2112a442;
const ALLOCATE = 0x0003;
const REFRESH = 0x0004;
const A = { username: 0x0006, integrity: 0x0008, error: 0x0009, lifetime: 0x000d, realm: 0x0014, nonce: 0x0015 };
const XOR_RELAYED_ADDRESS = 0x0016;
const REQUESTED_TRANSPORT = 0x0019;

type Attr = [type: number, value: Buffer];

function encode(method: number, attrs: Attr[], key?: Buffer): Buffer {
  const id = randomBytes(12);
  const body = Buffer.concat(
    attrs.map(([t, v]) => {
      const h = Buffer.alloc(4);
      h.writeUInt16BE(t, 0);
      h.writeUInt16BE(v.length, 2);
      return Buffer.concat([h, v, Buffer.alloc((4 - (v.length % 4)) % 4)]);
    }),
  );
  const head = Buffer.alloc(20);
  head.writeUInt16BE(method, 0);
  head.writeUInt32BE(COOKIE, 4);
  id.copy(head, 8);
  if (!key) {
    head.writeUInt16BE(body.length, 2);
    return Buffer.concat([head, body]);
  }
  // MESSAGE-INTEGRITY covers everything before it, with the length already counting its own 24 bytes.
  head.writeUInt16BE(body.length + 24, 2);
  const mac = createHmac("sha1", key)
    .update(Buffer.concat([head, body]))
    .digest();
  const mi = Buffer.alloc(4);
  mi.writeUInt16BE(A.integrity, 0);
  mi.writeUInt16BE(20, 2);
  return Buffer.concat([head, body, mi, mac]);
}

interface Reply {
  cls: "success" | "error";
  attrs: Map<number, Buffer>;
  code?: number;
}

function decode(b: Buffer): Reply {
  const type = b.readUInt16BE(0);
  const attrs = new Map<number, Buffer>();
  for (let o = 20; o + 4 <= b.length; ) {
    const t = b.readUInt16BE(o);
    const n = b.readUInt16BE(o + 2);
    attrs.set(t, b.subarray(o + 4, o + 4 + n));
    o += 4 + n + ((4 - (n % 4)) % 4);
  }
  const err = attrs.get(A.error);
  return {
    cls: (type & 0x0110) === 0x0110 ? "error" : "success",
    attrs,
    code: err ? (err[2] ?? 0) * 100 + (err[3] ?? 0) : undefined,
  };
}

/**
 * Allocate a relay on `host:port` with these credentials, then release it: "allocated", or the error code
 * coturn answered with (401: credentials refused).
 */
export async function turnAllocate(host: string, port: number, username: string, password: string) {
  const sock = createSocket("udp4");
  const ask = (m: Buffer) =>
    new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no answer from the TURN server")), 3000);
      sock.once("message", (d) => {
        clearTimeout(timer);
        resolve(decode(d));
      });
      sock.send(m, port, host);
    });
  const udp: Attr = [REQUESTED_TRANSPORT, Buffer.from([17, 0, 0, 0])];
  try {
    // The first, unauthenticated request is answered 401 with the realm and a nonce.
    const challenge = await ask(encode(ALLOCATE, [udp]));
    const realm = challenge.attrs.get(A.realm);
    const nonce = challenge.attrs.get(A.nonce);
    if (challenge.code !== 401 || !realm || !nonce) throw new Error(`unexpected challenge ${challenge.code}`);
    const key = createHash("md5").update(`${username}:${realm.toString()}:${password}`).digest();
    const auth: Attr[] = [
      [A.username, Buffer.from(username)],
      [A.realm, realm],
      [A.nonce, nonce],
    ];
    const r = await ask(encode(ALLOCATE, [udp, ...auth], key));
    if (r.cls === "error") return r.code ?? 0;
    if (!r.attrs.has(XOR_RELAYED_ADDRESS)) throw new Error("allocated without a relayed address");
    await ask(encode(REFRESH, [[A.lifetime, Buffer.alloc(4)], ...auth], key));
    return "allocated";
  } finally {
    sock.close();
  }
}
