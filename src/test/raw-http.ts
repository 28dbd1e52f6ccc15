/**
 * Raw HTTP/1.1 on a plain socket, for tests that send what no HTTP client would (malformed targets, garbage
 * request lines, smuggling shapes, headers that never end): the bytes go out as given and the answer comes back
 * as latin1 text, whatever the server made of them.
 */
import { connect } from "node:net";

export interface RawOptions {
  /** Stop waiting (and close the socket) after this long; default 2 s. */
  waitMs?: number;
  /** End our side once everything is written (a client that declares more body than it sends). */
  halfClose?: boolean;
  /** Stop as soon as the answer so far satisfies this (e.g. `headDone`). */
  until?: (answer: string) => boolean;
}

/**
 * Sends `data` (an array: its parts written one after another) on a fresh connection to 127.0.0.1:`port`; resolves
 * with everything the server wrote before it closed, `until` held or `waitMs` passed. Never rejects.
 */
export function sendRaw(
  port: number,
  data: string | Buffer | readonly (string | Buffer)[],
  opts: RawOptions = {},
): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let out = "";
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(out);
    };
    const timer = setTimeout(done, opts.waitMs ?? 2_000);
    s.on("data", (d) => {
      out += d.toString("latin1");
      if (opts.until?.(out)) done();
    });
    s.on("error", done);
    s.on("close", done);
    const parts = typeof data === "string" || Buffer.isBuffer(data) ? [data] : data;
    parts.forEach((p, i) => {
      s.write(p, i === parts.length - 1 && opts.halfClose ? () => s.end() : undefined);
    });
  });
}

/** A whole response head has arrived. */
export const headDone = (answer: string): boolean => answer.includes("\r\n\r\n");

/** The status code of the first response line; 0 when none came. */
export const statusOf = (answer: string): number => Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0);

/** Every status code answered (pipelined requests get several). */
export const statusesOf = (answer: string): number[] =>
  [...answer.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));

/** The body of the first response (everything after its head). */
export const bodyOf = (answer: string): string => answer.slice(answer.indexOf("\r\n\r\n") + 4);
