/**
 * Reading a socket into one reused buffer instead of a new Buffer per read. A publisher's socket is read ~100
 * times a second; through the stream machinery every read allocates a 64 KiB backing store (shrunk to the bytes
 * read), wraps it in a Buffer and goes through Readable's push/emit path, and those short-lived ArrayBuffers
 * count towards the external memory that schedules V8's full GCs. Node offers this for client sockets only
 * (`net.Socket`'s `onread` option); a server's sockets are created by Node, so the same switch is made on them
 * here: their handle is told to read into our buffer and the socket to hand reads to our callback, which is what
 * the option sets up. Where that internal shape is not there (TLS sockets, another Node), reads come as 'data'.
 *
 * The bytes passed to `onBytes` are only valid during the call: the next read overwrites them. That is also why
 * one buffer serves every connection: libuv fills it and our callback runs before any other socket is read, and
 * 200 idle publishers then cost no read buffers at all.
 */
import type { Socket } from "node:net";

const READ_BUFFER = 64 * 1024;

interface UserBufferHandle {
  useUserBuffer(b: Uint8Array): void;
}

let shared: Buffer | undefined;

/** The Socket's private symbols behind `onread` (same for every Socket: looked up once). */
let symbols: { buffer: symbol; callback: symbol } | null | undefined;

function onreadSymbols(socket: Socket): { buffer: symbol; callback: symbol } | null {
  if (symbols !== undefined) return symbols;
  const own = Object.getOwnPropertySymbols(socket);
  const buffer = own.find((s) => s.description === "kBuffer");
  const callback = own.find((s) => s.description === "kBufferCb");
  symbols = buffer && callback ? { buffer, callback } : null;
  return symbols;
}

/**
 * Call `onBytes` with each read of `socket`. Must be called in the connection callback, before the first read.
 * Returns whether the reused buffer is in use (false: ordinary 'data' events, each read its own Buffer).
 */
export function readSocket(socket: Socket, onBytes: (b: Buffer) => void): boolean {
  const handle = (socket as unknown as { _handle?: Partial<UserBufferHandle> | null })._handle;
  const sym = onreadSymbols(socket);
  const plain = socket.constructor.name === "Socket";
  if (!plain || !sym || typeof handle?.useUserBuffer !== "function") {
    socket.on("data", onBytes);
    return false;
  }
  shared ??= Buffer.allocUnsafe(READ_BUFFER);
  const buf = shared;
  handle.useUserBuffer(buf);
  const s = socket as unknown as Record<symbol, unknown>;
  s[sym.buffer] = buf;
  s[sym.callback] = (n: number) => {
    onBytes(buf.subarray(0, n));
  };
  return true;
}
