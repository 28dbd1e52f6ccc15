/** Re-render a component when an emitter (the client, a room, a thread) emits any of some events (batched). */
import type { MatrixClient } from "matrix-js-sdk";
import { useEffect, useState } from "preact/hooks";

/** Anything with on/off: matrix-js-sdk's typed emitters share no listener type, the bump ignores arguments. */
interface Emitter {
  on(event: never, fn: () => void): unknown;
  off(event: never, fn: () => void): unknown;
}

export function useEmitterEvents(emitter: Emitter | null | undefined, events: readonly string[]): number {
  const [tick, setTick] = useState(0);
  const key = events.join(",");
  useEffect(() => {
    if (!emitter) return;
    let queued = false;
    const bump = () => {
      if (queued) return;
      queued = true;
      // A macrotask, not requestAnimationFrame: rAF stops in background tabs and the list would go stale.
      setTimeout(() => {
        queued = false;
        setTick((t) => t + 1);
      }, 0);
    };
    const names = key.split(",");
    for (const e of names) emitter.on(e as never, bump);
    return () => {
      for (const e of names) emitter.off(e as never, bump);
    };
  }, [emitter, key]);
  return tick;
}

export function useClientEvents(client: MatrixClient, events: readonly string[]): number {
  return useEmitterEvents(client, events);
}

/** `value`, once it has stopped changing for `ms` (search boxes query after the typing pauses). */
export function useDebounced<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return settled;
}
