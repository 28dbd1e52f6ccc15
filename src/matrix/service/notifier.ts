/** Wakes long-polling /sync requests when the stream advanced or typing changed (see Notifier in hs.ts). */
import type { Homeserver, Notifier } from "../hs.ts";

export class SyncNotifier implements Notifier {
  readonly #waiters = new Set<() => void>();

  // biome-ignore lint/complexity/noUselessConstructor: every service is built as `new X(hs)`; this one needs nothing from it.
  constructor(_hs?: Homeserver) {}

  /** Waiters currently parked (for tests and metrics). */
  get waiting(): number {
    return this.#waiters.size;
  }

  notify(): void {
    if (this.#waiters.size === 0) return;
    const ws = [...this.#waiters];
    this.#waiters.clear();
    for (const w of ws) w();
  }

  wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted || timeoutMs <= 0) return resolve();
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}
