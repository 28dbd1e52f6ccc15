/** Types shared by every client-server handler file (`src/matrix/client/<section>.ts`). */
import type { IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import type { JsonObject } from "../events/types.ts";
import type { Homeserver } from "../hs.ts";
import type { Requester } from "../service/requester.ts";

export interface MatrixRequest {
  hs: Homeserver;
  method: string;
  path: string;
  /** The request-target as sent: percent-encoded path and query (what an X-Matrix signature covers). */
  uri: string;
  /** Path parameters, percent-decoded: `{roomId}` -> params.roomId. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** Parsed JSON object for body "json" routes ({} when empty); undefined on other routes (which never read it). */
  body: JsonObject;
  /**
   * The body as chunks for body "stream" routes (media upload), bounded by the route's byte limit (M_TOO_LARGE
   * past it); undefined otherwise. Read it once.
   */
  stream: AsyncIterable<Buffer> | undefined;
  headers: IncomingHttpHeaders;
  ip: string;
  /** Set on "required" routes; set on "optional" routes when a valid token was given. */
  requester: Requester | null;
  /** Aborted when the client goes away (long-polls stop waiting). */
  signal: AbortSignal;
}

export type Reply =
  | { status?: number; json: unknown; headers?: Record<string, string> }
  | { status?: number; body: Buffer | Readable | string; headers: Record<string, string> };

export interface Route {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /**
   * Path patterns: literal segments and `{name}` parameters; a final `{name?}` may be absent or empty
   * (state keys). A `/_matrix/client/v3/...` pattern is also served under `/r0/`.
   */
  paths: string[];
  auth: "required" | "optional" | "none";
  /** Served to a locked account too (logout, logout/all); every other authenticated route answers M_USER_LOCKED. */
  allowLocked?: boolean;
  /** Refused to a suspended account (403 M_USER_SUSPENDED): joins, invites, knocks, sends, state, profile, rooms. */
  refuseSuspended?: boolean;
  /** Apply the per-user (authenticated) or per-IP rate limit. */
  rateLimit?: boolean;
  /** How to read the body. Default: "json" for POST/PUT, "none" for GET/DELETE. */
  body?: "json" | "stream" | "none";
  /** Byte limit for "stream" bodies (default: config media.maxUploadBytes). */
  maxBodyBytes?: number;
  /** The route may hold its response open past the listener's idle timeout (long-poll /sync). */
  holdsOpen?: boolean;
  handler(req: MatrixRequest): Promise<Reply>;
}

/** Each handler file exports `routes: Route[]`; a doc comment on each route names its exact spec route. */
export const json = (body: unknown, status = 200): Reply => ({ status, json: body });
