/**
 * Hostile peers for the hardening tests, and what they cost the media process: its RSS and its child processes,
 * read from /proc.
 */
import { randomBytes, randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { HANDSHAKE_SIZE, RTMP_VERSION } from "../../../src/media/protocols/rtmp/handshake.ts";
import { encodeStreamId } from "../../../src/media/servers/srt/handshake.ts";

/** Resident set size of a process in MiB. */
export function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

/** Samples `pid`'s RSS every 100 ms until stopped; returns the peak. */
export function rssPeak(pid: number): { stop(): number } {
  let peak = rssMiB(pid);
  const t = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, 100);
  return {
    stop() {
      clearInterval(t);
      return Math.max(peak, rssMiB(pid));
    },
  };
}

/** A raw RTMP socket after the simple handshake (C0 C1, S0 S1 S2, C2): it may now send chunks, or nothing. */
export async function rtmpHandshake(port: number): Promise<{ socket: Socket; closed: Promise<number> }> {
  const socket = connect(port, "127.0.0.1");
  const opened = Date.now();
  const closed = new Promise<number>((r) => socket.once("close", () => r(Date.now() - opened)));
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const c1 = randomBytes(HANDSHAKE_SIZE);
  c1.fill(0, 0, 8);
  socket.write(Buffer.concat([Buffer.from([RTMP_VERSION]), c1]));
  let got = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length < 1 + 2 * HANDSHAKE_SIZE) return;
      socket.off("data", onData);
      socket.write(got.subarray(1, 1 + HANDSHAKE_SIZE));
      resolve();
    };
    socket.on("data", onData);
    socket.once("close", () => reject(new Error("closed during the handshake")));
  });
  return { socket, closed };
}

/** A type 0 chunk header: chunk stream `csid` (3..63) starts a message of `length` bytes (video, stream 1). */
export function chunkHeader(csid: number, length: number): Buffer {
  return Buffer.from([csid, 0, 0, 0, length >> 16, (length >> 8) & 0xff, length & 0xff, 9, 1, 0, 0, 0]);
}

/**
 * Partial messages of `length` declared bytes on chunk streams first..first+streams-1 (below 64), `chunk` bytes
 * per chunk, sent round robin for as long as the server keeps the socket open (or `maxBytes` went out). Resolves
 * with the bytes written.
 */
export async function parkPartials(
  socket: Socket,
  o: { first: number; streams: number; length: number; chunk: number; maxBytes: number },
): Promise<number> {
  if (o.first < 3 || o.first + o.streams > 64) throw new Error("chunk streams must be within 3..63");
  let sent = 0;
  let open = !socket.destroyed;
  socket.once("close", () => {
    open = false;
  });
  const body = Buffer.alloc(o.chunk, 0x17);
  const write = (b: Buffer) =>
    new Promise<void>((r) => {
      sent += b.length;
      if (socket.write(b)) r();
      else {
        socket.once("drain", r);
        socket.once("close", r);
      }
    });
  for (let round = 0; open && sent < o.maxBytes && round * o.chunk < o.length - o.chunk; round++) {
    for (let i = 0; i < o.streams && open; i++) {
      const csid = o.first + i;
      const head = round === 0 ? chunkHeader(csid, o.length) : Buffer.from([0xc0 | csid]);
      await write(Buffer.concat([head, body]));
    }
  }
  return sent;
}

/** An SRT handshake datagram as a caller sends it (header + 48-byte CIF + optional Stream ID extension). */
export function srtHandshake(o: {
  version: number;
  type: number;
  socketId: number;
  cookie?: number;
  streamId?: string;
}): Buffer {
  const sid = o.streamId === undefined ? Buffer.alloc(0) : encodeStreamId(o.streamId);
  // An HSv5 conclusion carries HSREQ as libsrt's does (SRT 1.5.0, TSBPD both ways, TLPKTDROP, NAK report,
  // REXMIT flag; 120 ms each way), so the listener gets to its access checks.
  const hsreq = o.version === 5 && o.type === 0xffffffff;
  const b = Buffer.alloc(64 + (hsreq ? 16 : 0) + (sid.length ? 4 + sid.length : 0));
  b.writeUInt32BE(0x80000000, 0);
  b.writeUInt32BE(o.version, 16);
  b.writeUInt16BE(o.version === 4 ? 2 : hsreq ? 5 : 0, 22); // HSv4: socket type DGRAM; HSv5: HSREQ | CONFIG
  b.writeUInt32BE(randomInt(1, 0x7fffffff), 24);
  b.writeUInt32BE(1500, 28);
  b.writeUInt32BE(8192, 32);
  b.writeUInt32BE(o.type >>> 0, 36);
  b.writeUInt32BE(o.socketId, 40);
  b.writeUInt32BE((o.cookie ?? 0) >>> 0, 44);
  b.writeUInt32BE(0x0100007f, 48);
  let off = 64;
  if (hsreq) {
    b.writeUInt16BE(1, off);
    b.writeUInt16BE(3, off + 2);
    b.writeUInt32BE(0x010500, off + 4);
    b.writeUInt32BE(0x3f, off + 8);
    b.writeUInt32BE((120 << 16) | 120, off + 12);
    off += 16;
  }
  if (sid.length) {
    b.writeUInt16BE(5, off);
    b.writeUInt16BE(sid.length / 4, off + 2);
    sid.copy(b, off + 4);
  }
  return b;
}
