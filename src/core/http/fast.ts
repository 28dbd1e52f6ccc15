/**
 * The kit's fast path: answers the server already holds as complete bytes (a cached playlist or manifest),
 * written straight to the socket without node:http's parser, IncomingMessage and ServerResponse. Opt-in per
 * listener (`ListenerOptions.fast`), plain TCP only.
 *
 * A connection starts on the fast path. Each chunk it reads is parsed by a strict, minimal parser that
 * recognises only simple complete requests: `GET` or `HEAD`, an origin-form target in canonical form (the
 * pathname and query `parseTarget` would give, unchanged), `HTTP/1.1`, a Host header, no body and nothing that
 * changes the framing (Transfer-Encoding, Content-Length, Upgrade, Expect, Connection other than keep-alive),
 * no duplicate header, the whole head in this chunk and within the head-size limit. The route's synchronous
 * responder is asked for a complete response; if it gives one, it is written (pipelined answers in one corked
 * write). Anything else (no answer, an unusual or malformed request, a head split over TCP chunks, a throw)
 * hands the socket to node:http for good, with the bytes not yet answered put back (`unshift`): from then on
 * the kit's usual path (its parser, its 400/408/431 answers, its timeouts) serves it, in order.
 *
 * An answer may also come later (a promise: an LL-HLS blocking reload held until its part exists). The socket is
 * then paused and its idle timeout lifted until the answer is written; the requests pipelined behind it are
 * served after it, in order; a promise that gives nothing hands the socket, from that request on, to node:http;
 * `signal()` aborts when the socket closes, so a wait ends with its client.
 *
 * While on the fast path a socket has no partial request buffered; it is closed after the headers timeout
 * before its first request and after the keep-alive timeout between requests. A client that does not read
 * its answers is paused once the socket's write buffer is full, and read again on `drain`.
 */
import type { Socket } from "node:net";

export interface FastRequest {
  method: "GET" | "HEAD";
  /** The path as sent: canonical, so exactly the `pathname` `parseTarget` gives for it. */
  path: string;
  /** The query with its "?" as sent (canonical too, `parseTarget`'s `search`), or "". */
  search: string;
  /** Header values by lower-case name; each name appears at most once; Host is always there. */
  headers: Record<string, string>;
  remoteAddress: string;
  /** Aborts when the connection closes (made on first call; for answers that wait). */
  signal: () => AbortSignal;
}

/**
 * A complete HTTP/1.1 response (status line, headers, body) for the request, now or later (a promise), or
 * undefined: the normal path answers it.
 */
export type FastAnswer = Buffer | Promise<Buffer | undefined> | undefined;
export type FastResponder = (r: FastRequest) => FastAnswer;

export interface FastParsed {
  request: FastRequest;
  /** Offset just past the head's final CRLF CRLF. */
  end: number;
}

// 1: allowed in a fast-path path; 2: also allowed in its query. Everything `new URL` would re-encode or
// reinterpret is out ('"', '#', '<', '>', '\\', '`', '{', '}', '^', '|', "'" in a query), as are controls and space.
const TARGET = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&()*+,;=:@/%") {
  TARGET[c.charCodeAt(0)] = 3;
}
TARGET["'".charCodeAt(0)] = 1;
TARGET["?".charCodeAt(0)] = 2;
const TOKEN = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~") {
  TOKEN[c.charCodeAt(0)] = 1;
}
/** Headers that change the framing or the protocol: such a request always takes node:http's path. */
const REFUSED = new Set(["transfer-encoding", "content-length", "upgrade", "expect", "http2-settings"]);
const MAX_HEADERS = 64;
const CRLF2 = Buffer.from("\r\n\r\n");

function validTarget(t: string): { path: string; search: string } | null {
  if (t.charCodeAt(0) !== 0x2f) return null;
  let q = -1;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c >= 128) return null;
    const k = TARGET[c] as number;
    if (q < 0) {
      if (c === 0x3f) q = i;
      else if ((k & 1) === 0) return null;
    } else if ((k & 2) === 0) return null;
  }
  const path = q < 0 ? t : t.slice(0, q);
  // Dot segments (also percent-encoded ones) and empty ones are resolved by `new URL`: not canonical.
  if (path.includes("/.") || path.includes("//") || /%2e/i.test(path)) return null;
  return { path, search: q < 0 || q === t.length - 1 ? "" : t.slice(q) };
}

function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return s.slice(a, b);
}

/**
 * The simple complete request whose head starts at `start`, or null: anything unusual, malformed, split
 * (no CRLF CRLF yet) or larger than `maxHead` bytes is for node:http.
 */
export function parseFast(
  buf: Buffer,
  start: number,
  maxHead: number,
  remoteAddress = "",
  signal: () => AbortSignal = neverAborts,
): FastParsed | null {
  const at = buf.indexOf(CRLF2, start);
  if (at < 0 || at + 4 - start > maxHead) return null;
  const head = buf.toString("latin1", start, at);
  let eol = head.indexOf("\r\n");
  const line = eol < 0 ? head : head.slice(0, eol);
  let method: "GET" | "HEAD";
  let sp: number;
  if (line.startsWith("GET ")) {
    method = "GET";
    sp = 4;
  } else if (line.startsWith("HEAD ")) {
    method = "HEAD";
    sp = 5;
  } else return null;
  if (!line.endsWith(" HTTP/1.1")) return null;
  const target = validTarget(line.slice(sp, line.length - 9));
  if (!target) return null;
  const headers: Record<string, string> = Object.create(null);
  let n = 0;
  while (eol >= 0) {
    const from = eol + 2;
    eol = head.indexOf("\r\n", from);
    const h = eol < 0 ? head.slice(from) : head.slice(from, eol);
    if (++n > MAX_HEADERS) return null;
    const colon = h.indexOf(":");
    if (colon <= 0) return null;
    for (let i = 0; i < colon; i++) {
      const c = h.charCodeAt(i);
      if (c >= 128 || TOKEN[c] === 0) return null;
    }
    const value = trimOws(h.slice(colon + 1));
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) return null;
    }
    const name = h.slice(0, colon).toLowerCase();
    if (name in headers || REFUSED.has(name)) return null;
    if (name === "connection" && value.toLowerCase() !== "keep-alive") return null;
    headers[name] = value;
  }
  if (headers.host === undefined) return null;
  return {
    request: { method, path: target.path, search: target.search, headers, remoteAddress, signal },
    end: at + 4,
  };
}

const NEVER = new AbortController().signal;
function neverAborts(): AbortSignal {
  return NEVER;
}

let dateSecond = -1;
let dateText = "";

/** The Date header's value (IMF-fixdate), made once per second. */
export function httpDate(): string {
  const s = Math.floor(Date.now() / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateText = new Date(s * 1000).toUTCString();
  }
  return dateText;
}

const REASONS: Record<number, string> = {
  200: "OK",
  204: "No Content",
  304: "Not Modified",
  404: "Not Found",
  503: "Service Unavailable",
};

/**
 * A complete response built once: status line and headers (checked here as `setHeader` would), Date added and the
 * bytes made again only when the second changes; a HEAD gets the same head without the body.
 */
export class PrebuiltResponse {
  readonly #head: string;
  readonly #body: Buffer;
  #second = "";
  #get: Buffer | undefined;
  #headOnly: Buffer | undefined;

  constructor(status: number, headers: Iterable<readonly [string, string]>, body: Buffer = Buffer.alloc(0)) {
    let head = `HTTP/1.1 ${status} ${REASONS[status] ?? "Unknown"}\r\n`;
    for (const [k, v] of headers) {
      for (let i = 0; i < k.length; i++)
        if (k.charCodeAt(i) >= 128 || TOKEN[k.charCodeAt(i)] === 0) throw new Error(`bad header name ${k}`);
      if (/[^\t\x20-\x7e\x80-\xff]/.test(v)) throw new Error(`bad value for header ${k}`);
      head += `${k}: ${v}\r\n`;
    }
    const noBody = status === 204 || status === 304;
    if (!noBody) head += `Content-Length: ${body.length}\r\n`;
    this.#head = head;
    this.#body = noBody ? Buffer.alloc(0) : body;
  }

  bytes(method: "GET" | "HEAD"): Buffer {
    const date = httpDate();
    if (date !== this.#second) {
      this.#second = date;
      this.#get = undefined;
      this.#headOnly = undefined;
    }
    if (method === "HEAD") {
      if (!this.#headOnly) this.#headOnly = Buffer.from(`${this.#head}Date: ${date}\r\n\r\n`, "latin1");
      return this.#headOnly;
    }
    if (this.#get) return this.#get;
    const head = `${this.#head}Date: ${date}\r\n\r\n`;
    const out = Buffer.allocUnsafe(head.length + this.#body.length);
    out.write(head, 0, "latin1");
    this.#body.copy(out, head.length);
    this.#get = out;
    return out;
  }
}

export interface FastStats {
  fast: number;
  handedOff: number;
}

export interface FastConnectionOptions {
  respond: FastResponder;
  /** node:http's own connection handler: the socket is given to it for good. */
  handOff: (socket: Socket) => void;
  maxHead: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  stats: FastStats;
  /** A responder that throws: logged by the kit; the request then goes to node:http. */
  onError: (e: unknown) => void;
  /** Sockets still on the fast path (closed with the listener). */
  live: Set<Socket>;
}

/** Serves one plain TCP connection on the fast path until it is closed or handed to node:http. */
export function fastConnection(socket: Socket, o: FastConnectionOptions): void {
  const remote = socket.remoteAddress ?? "";
  let stash: Buffer | null = null;
  let gone = false;
  // An answer still to come (a promise): reading stays paused until it is written.
  let waiting = false;
  let closed: AbortController | undefined;
  const signal = () => {
    if (!closed) {
      closed = new AbortController();
      if (socket.destroyed) closed.abort();
    }
    return closed.signal;
  };
  // The headers timeout until the first answer, then the keep-alive one (set once: reads and writes refresh it).
  let idleSet = false;
  o.live.add(socket);

  const onTimeout = () => socket.destroy();
  const onError = () => socket.destroy();
  const onEnd = () => socket.end();
  const onClose = () => {
    o.live.delete(socket);
    closed?.abort();
  };
  const onDrain = () => {
    if (waiting) return;
    const s = stash;
    stash = null;
    if (s) serve(s);
    if (!gone && stash === null && !waiting) socket.resume();
  };

  const handOff = (rest: Buffer) => {
    gone = true;
    o.live.delete(socket);
    socket.off("data", serve);
    socket.off("timeout", onTimeout);
    socket.off("error", onError);
    socket.off("end", onEnd);
    socket.off("close", onClose);
    socket.off("drain", onDrain);
    // A wait's signal still follows the socket (node:http owns it now).
    if (closed) socket.once("close", () => closed?.abort());
    socket.setTimeout(0);
    o.stats.handedOff++;
    if (rest.length > 0) socket.unshift(rest);
    o.handOff(socket);
    if (socket.isPaused()) socket.resume();
  };

  function serve(chunk: Buffer): void {
    let off = 0;
    let corked = false;
    while (off < chunk.length) {
      const p = parseFast(chunk, off, o.maxHead, remote, signal);
      if (!p) break;
      let answer: FastAnswer;
      try {
        answer = o.respond(p.request);
      } catch (e) {
        o.onError(e);
      }
      if (!answer) break;
      if (!Buffer.isBuffer(answer)) {
        if (corked) socket.uncork();
        later(answer, chunk, off, p.end);
        return;
      }
      off = p.end;
      if (!corked && off < chunk.length) {
        corked = true;
        socket.cork();
      }
      socket.write(answer);
      o.stats.fast++;
      if (socket.writableNeedDrain && off < chunk.length) {
        // The client is not reading: keep the rest until it does.
        stash = chunk.subarray(off);
        socket.pause();
        if (corked) socket.uncork();
        return;
      }
    }
    if (corked) socket.uncork();
    if (off < chunk.length) handOff(off === 0 ? chunk : chunk.subarray(off));
    else if (!idleSet) {
      idleSet = true;
      socket.setTimeout(o.keepAliveTimeoutMs);
    }
  }

  /** Waits for the answer to the request at chunk[from, end): written, then the rest served; nothing: handed off. */
  function later(answer: Promise<Buffer | undefined>, chunk: Buffer, from: number, end: number): void {
    waiting = true;
    socket.pause();
    socket.setTimeout(0);
    answer
      .catch((e: unknown) => {
        o.onError(e);
        return undefined;
      })
      .then((b) => {
        waiting = false;
        if (gone || socket.destroyed) return;
        if (!b) return handOff(chunk.subarray(from));
        socket.write(b);
        o.stats.fast++;
        idleSet = true;
        socket.setTimeout(o.keepAliveTimeoutMs);
        if (socket.writableNeedDrain) {
          if (end < chunk.length) stash = chunk.subarray(end);
          return; // still paused: `drain` serves the rest and resumes
        }
        if (end < chunk.length) serve(chunk.subarray(end));
        if (!gone && !waiting && stash === null) socket.resume();
      });
  }

  socket.setNoDelay(true);
  socket.setTimeout(o.headersTimeoutMs);
  socket.on("timeout", onTimeout);
  socket.on("error", onError);
  socket.on("end", onEnd);
  socket.on("close", onClose);
  socket.on("drain", onDrain);
  socket.on("data", serve);
}
