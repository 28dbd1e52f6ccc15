/**
 * The supervisor's capture of a service's stdout/stderr into logs/<service>.log. Services write to a pipe, never
 * to the file, so a full disk cannot fail (and kill) a service through its logger; here every line is scrubbed of
 * secrets, and a failed append (ENOSPC, EIO) drops lines instead of throwing. The first append that works again
 * says how many lines were dropped and why.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import type { Readable } from "node:stream";
import { scrubText } from "../core/redact.ts";

/** A line longer than this (no newline yet) is written in pieces: bounded memory per stream. */
const MAX_PARTIAL = 64 * 1024;
/** After a failure, reopening the file is tried at most this often. */
const REOPEN_MS = 1000;

export class LogSink {
  readonly file: string;
  /** Lines dropped since the last successful append. */
  dropped = 0;
  /** Lines dropped over the sink's life (status/metrics, tests). */
  droppedTotal = 0;
  #fd: number | undefined;
  #lastError = "";
  #failedAt = 0;
  /** The last append stopped inside a line: start the next one on a fresh line. */
  #midLine = false;
  readonly #onError: (message: string) => void;

  constructor(file: string, onError: (message: string) => void = () => {}) {
    this.file = file;
    this.#onError = onError;
  }

  /** Copy `stream` into the file line by line until it ends. */
  attach(stream: Readable): void {
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      const text = partial + chunk;
      const end = text.lastIndexOf("\n");
      if (end < 0) {
        partial = text;
        if (partial.length > MAX_PARTIAL) {
          this.writeLines([partial]);
          partial = "";
        }
        return;
      }
      partial = text.slice(end + 1);
      this.writeLines(text.slice(0, end).split("\n"));
    });
    stream.on("end", () => {
      if (partial) this.writeLines([partial]);
      partial = "";
    });
    stream.on("error", () => {});
  }

  /** Append `lines` (scrubbed); never throws. */
  writeLines(lines: string[]): void {
    if (lines.length === 0) return;
    let text = lines.map((l) => `${scrubText(l)}\n`).join("");
    if (this.dropped > 0) {
      const note = JSON.stringify({
        t: new Date().toISOString(),
        level: "warn",
        msg: `log capture dropped ${this.dropped} line(s): ${this.#lastError}`,
        dropped: this.dropped,
      });
      text = `${note}\n${text}`;
    }
    if (this.#midLine) text = `\n${text}`;
    if (this.#append(text)) {
      this.dropped = 0;
      this.#midLine = false;
    } else {
      this.dropped += lines.length;
      this.droppedTotal += lines.length;
    }
  }

  close(): void {
    if (this.#fd !== undefined) {
      try {
        closeSync(this.#fd);
      } catch {}
      this.#fd = undefined;
    }
  }

  #append(text: string): boolean {
    const now = Date.now();
    if (this.#fd === undefined) {
      if (this.#failedAt && now - this.#failedAt < REOPEN_MS) return false;
      try {
        this.#fd = openSync(this.file, "a", 0o600);
      } catch (e) {
        this.#fail(e, now);
        return false;
      }
    }
    const buf = Buffer.from(text);
    let off = 0;
    try {
      while (off < buf.length) off += writeSync(this.#fd, buf, off, buf.length - off);
      return true;
    } catch (e) {
      // A short write leaves part of a line in the file; the next successful append begins a new one.
      if (off > 0) this.#midLine = true;
      this.#fail(e, now);
      return false;
    }
  }

  #fail(e: unknown, now: number): void {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    // Say it once per failure episode, not once per line.
    if (this.dropped === 0) this.#onError(`cannot write ${this.file}: ${code}`);
    this.#lastError = String(code);
    this.#failedAt = now;
    // Reopen (at most once per REOPEN_MS) rather than keep writing into a descriptor that EIO may have broken.
    this.close();
  }
}
