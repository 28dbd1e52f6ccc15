/** Request bodies read with a limit: whole (small JSON) or streamed (uploads), never unbounded. */
import type { IncomingMessage } from "node:http";
import { AmiError } from "../errors.ts";

const tooLarge = (limit: number) => new AmiError("M_TOO_LARGE", `Request body exceeds ${limit} bytes`);

/** Refuses at once when Content-Length already says the body is too large. */
function checkDeclared(req: IncomingMessage, limit: number): void {
  const declared = Number(req.headers["content-length"] ?? Number.NaN);
  if (declared > limit) throw tooLarge(limit);
}

/**
 * The body as chunks, at most `limit` bytes in all; throws M_TOO_LARGE past it (the reply then closes the
 * connection, so the rest is never read) and M_UNKNOWN/400 when the client aborts.
 */
export async function* bodyChunks(req: IncomingMessage, limit: number): AsyncGenerator<Buffer> {
  checkDeclared(req, limit);
  let size = 0;
  try {
    for await (const c of req) {
      const chunk = c as Buffer;
      size += chunk.length;
      if (size > limit) throw tooLarge(limit);
      yield chunk;
    }
  } catch (e) {
    if (e instanceof AmiError) throw e;
    throw new AmiError("M_UNKNOWN", "Request body aborted", {}, 400);
  }
  if (!req.complete) throw new AmiError("M_UNKNOWN", "Request body aborted", {}, 400);
}

/** The whole body in memory: only for small bodies (JSON), with a small limit. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of bodyChunks(req, limit)) chunks.push(c);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

/** Bodies nested deeper are refused: everything downstream walks JSON recursively. */
export const MAX_JSON_DEPTH = 100;

/** Parses a JSON body; `{}` for an empty one. Malformed: M_NOT_JSON. */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const buf = await readBody(req, limit);
  if (buf.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(buf.toString("utf8"));
  } catch {
    throw new AmiError("M_NOT_JSON", "Content not JSON.");
  }
  if (v !== null && typeof v === "object" && depthExceeds(v, MAX_JSON_DEPTH))
    throw new AmiError("M_BAD_JSON", `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  return v;
}

/** Iterative (no recursion, so no stack overflow on hostile input). */
export function depthExceeds(root: object, max: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (d > max) return true;
    if (v && typeof v === "object")
      for (const c of Object.values(v)) if (c && typeof c === "object") stack.push([c, d + 1]);
  }
  return false;
}
