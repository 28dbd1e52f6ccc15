/** Outputs that follow a path across publishers (recording, restream): wait for the path's next live stream. */
import type { Hub, MediaStream } from "./hub.ts";

/** The live stream on `path` now, or the next one published there; undefined when `signal` aborts first. */
export function nextStream(hub: Hub, path: string, signal: AbortSignal): Promise<MediaStream | undefined> {
  const now = hub.get(path);
  if (now && !now.ended) return Promise.resolve(now);
  return new Promise((resolve) => {
    const onPublish = (s: MediaStream) => {
      if (s.path !== path) return;
      done(s);
    };
    const done = (s: MediaStream | undefined) => {
      hub.off("publish", onPublish);
      signal.removeEventListener("abort", onAbort);
      resolve(s);
    };
    const onAbort = () => done(undefined);
    if (signal.aborted) return resolve(undefined);
    hub.on("publish", onPublish);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Sleep that an abort cuts short. */
export const pause = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(() => {
      signal.removeEventListener("abort", stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(t);
      resolve();
    };
    signal.addEventListener("abort", stop, { once: true });
  });

/** Resolves when `stream` ends or `signal` aborts. */
export const untilEnded = (stream: MediaStream, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (stream.ended || signal.aborted) return resolve();
    const done = () => {
      stream.off("end", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    stream.once("end", done);
    signal.addEventListener("abort", done, { once: true });
  });
