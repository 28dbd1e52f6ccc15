/**
 * RTSP 1.0 (RFC 2326) on a byte stream: requests (request line, headers, Content-Length body) interleaved with
 * `$` frames (RFC 2326 10.12: '$', channel, 16-bit length, an RTP or RTCP packet). The parser is incremental
 * and bounded: a head larger than maxHead bytes, more than maxHeaders headers, a body over maxBody or bytes that
 * are neither a request nor a frame throw RtspError, whose status the connection answers before closing.
 */

export interface RtspRequest {
  method: string;
  url: string;
  /** Lower-cased names; a repeated header keeps its last value. */
  headers: Map<string, string>;
  body: Buffer;
}

export interface Interleaved {
  channel: number;
  data: Buffer;
}

export interface ParseLimits {
  maxHead: number;
  maxHeaders: number;
  maxBody: number;
}

export class RtspError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Request Entity Too Large",
  415: "Unsupported Media Type",
  431: "Request Header Fields Too Large",
  453: "Not Enough Bandwidth",
  454: "Session Not Found",
  455: "Method Not Valid in This State",
  459: "Aggregate Operation Not Allowed",
  461: "Unsupported Transport",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "RTSP Version Not Supported",
};

const CRLF2 = Buffer.from("\r\n\r\n");

export class RtspParser {
  readonly #limits: ParseLimits;
  #buf: Buffer = Buffer.alloc(0);
  /** Bytes received after #buf, not joined yet: a $ frame or a body is joined once it is whole, not per chunk. */
  #more: Buffer[] = [];
  #moreBytes = 0;
  /** Bytes #buf must hold before the next message can be complete (0: unknown, try every chunk). */
  #need = 0;

  constructor(limits: ParseLimits) {
    this.#limits = limits;
  }

  /** Bytes held waiting for the rest of a message. */
  get held(): number {
    return this.#buf.length + this.#moreBytes;
  }

  /** Feed bytes (copied: the caller may reuse `d`); returns the complete messages. */
  push(d: Buffer): (RtspRequest | Interleaved)[] {
    if (this.#buf.length + this.#moreBytes + d.length < this.#need) {
      // Still short of the frame or body under way: kept as is (joining every chunk would copy it over and over).
      this.#more.push(Buffer.from(d));
      this.#moreBytes += d.length;
      return [];
    }
    this.#buf =
      this.#buf.length === 0 && this.#moreBytes === 0 ? Buffer.from(d) : Buffer.concat([this.#buf, ...this.#more, d]);
    this.#more = [];
    this.#moreBytes = 0;
    this.#need = 0;
    const out: (RtspRequest | Interleaved)[] = [];
    for (;;) {
      const m = this.#next();
      if (!m) break;
      out.push(m);
    }
    return out;
  }

  #next(): RtspRequest | Interleaved | undefined {
    const b = this.#buf;
    if (b.length === 0) return undefined;
    if (b[0] === 0x24) {
      if (b.length < 4) return undefined;
      const len = b.readUInt16BE(2);
      if (b.length < 4 + len) {
        this.#need = 4 + len;
        return undefined;
      }
      const data = b.subarray(4, 4 + len);
      this.#buf = b.subarray(4 + len);
      return { channel: b[1] as number, data };
    }
    // Tolerate stray line breaks between messages (some clients end a body with an extra CRLF).
    let start = 0;
    while (start < b.length && (b[start] === 0x0d || b[start] === 0x0a)) start++;
    if (start > 0) {
      this.#buf = b.subarray(start);
      return this.#next();
    }
    const end = b.indexOf(CRLF2);
    if (end < 0) {
      if (b.length > this.#limits.maxHead) throw new RtspError(431, "request head too large");
      if (!/^[A-Z_]{0,20}$/.test(b.toString("latin1", 0, Math.min(b.length, 20)).split(" ")[0] ?? ""))
        throw new RtspError(400, "not an RTSP request");
      return undefined;
    }
    if (end > this.#limits.maxHead) throw new RtspError(431, "request head too large");
    const lines = b.toString("latin1", 0, end).split("\r\n");
    const m = /^([A-Z_]{1,20}) (\S{1,4096}) RTSP\/(\d\.\d)$/.exec(lines[0] ?? "");
    if (!m) throw new RtspError(400, "not an RTSP request line");
    if (m[3] !== "1.0") throw new RtspError(505, `RTSP/${m[3]} is not supported`);
    if (lines.length - 1 > this.#limits.maxHeaders) throw new RtspError(431, "too many headers");
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const c = line.indexOf(":");
      if (c <= 0) throw new RtspError(400, "malformed header line");
      headers.set(line.slice(0, c).trim().toLowerCase(), line.slice(c + 1).trim());
    }
    const cl = headers.get("content-length");
    const len = cl === undefined ? 0 : Number(cl);
    if (!Number.isInteger(len) || len < 0) throw new RtspError(400, "bad Content-Length");
    if (len > this.#limits.maxBody) throw new RtspError(413, "body too large");
    if (b.length < end + 4 + len) {
      this.#need = end + 4 + len;
      return undefined;
    }
    const body = Buffer.from(b.subarray(end + 4, end + 4 + len));
    this.#buf = b.subarray(end + 4 + len);
    return { method: m[1] as string, url: m[2] as string, headers, body };
  }
}

/** A response: status line, CSeq (echoed), Server, the given headers, and the body with its length. */
export function response(
  status: number,
  cseq: string | undefined,
  headers: [string, string][] = [],
  body?: Buffer | string,
): Buffer {
  const lines = [`RTSP/1.0 ${status} ${REASONS[status] ?? "Error"}`];
  if (cseq !== undefined) lines.push(`CSeq: ${cseq}`);
  lines.push("Server: ami-streams");
  for (const [k, v] of headers) lines.push(`${k}: ${v}`);
  const b = body === undefined ? undefined : Buffer.from(body);
  if (b) lines.push(`Content-Length: ${b.length}`);
  const head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
  return b ? Buffer.concat([head, b]) : head;
}

/** A `$` frame. */
export function interleaved(channel: number, data: Buffer): Buffer {
  const h = Buffer.allocUnsafe(4);
  h[0] = 0x24;
  h[1] = channel;
  h.writeUInt16BE(data.length, 2);
  return Buffer.concat([h, data]);
}

export interface Transport {
  tcp: boolean;
  multicast: boolean;
  /** interleaved=a-b (TCP) */
  interleaved?: [number, number];
  /** client_port=a-b (UDP) */
  clientPort?: [number, number];
  record: boolean;
}

/** `a-b` (or `a`: a and a+1), both integers in min..max; undefined otherwise. */
const pair = (v: string | undefined, min: number, max: number): [number, number] | undefined => {
  if (!v || !/^\d{1,5}(-\d{1,5})?$/.test(v.trim())) return undefined;
  const [a, b] = v.trim().split("-").map(Number) as [number, number | undefined];
  const second = b ?? a + 1;
  return a < min || a > max || second < min || second > max ? undefined : [a, second];
};

/** The first transport of a Transport header we can serve (RTP/AVP over UDP or TCP); undefined: none. */
export function parseTransport(header: string | undefined): Transport | undefined {
  if (!header) return undefined;
  let first: Transport | undefined;
  for (const spec of header.split(",")) {
    const parts = spec.split(";").map((p) => p.trim());
    const proto = (parts[0] ?? "").toUpperCase();
    if (proto !== "RTP/AVP" && proto !== "RTP/AVP/UDP" && proto !== "RTP/AVP/TCP") continue;
    const params = new Map(parts.slice(1).map((p) => [p.split("=")[0]?.toLowerCase() ?? "", p.split("=")[1]]));
    const t: Transport = {
      tcp: proto === "RTP/AVP/TCP",
      multicast: params.has("multicast"),
      // A `$` frame's channel is one byte; a UDP port 0 cannot be sent to.
      interleaved: pair(params.get("interleaved"), 0, 255),
      clientPort: pair(params.get("client_port"), 1, 65535),
      record: (params.get("mode") ?? "").replace(/"/g, "").toLowerCase() === "record",
    };
    if (!t.multicast) return t;
    first ??= t;
  }
  return first;
}
