/**
 * Turns a callback-driven search (the get_peers walk calls `push` per peer) into an AsyncIterable that yields
 * each distinct peer as it is found. Breaking out of the loop aborts the search; an error of the search is thrown
 * from the loop, never left unhandled.
 */
import type { NodeAddr } from "./id.ts";

export async function* peerStream(
  initial: readonly NodeAddr[],
  search: (push: (p: NodeAddr) => void, signal: AbortSignal) => Promise<unknown>,
  signal?: AbortSignal,
): AsyncGenerator<NodeAddr> {
  const queue: NodeAddr[] = [];
  const seen = new Set<string>();
  let wake: (() => void) | null = null;
  let done = false;
  let failure: { err: unknown } | null = null;
  const push = (p: NodeAddr) => {
    const k = `${p.host}:${p.port}`;
    if (seen.has(k)) return;
    seen.add(k);
    queue.push(p);
    wake?.();
  };
  for (const p of initial) push(p);
  const inner = new AbortController();
  search(push, signal ? AbortSignal.any([signal, inner.signal]) : inner.signal).then(
    () => {
      done = true;
      wake?.();
    },
    (err: unknown) => {
      failure = { err };
      done = true;
      wake?.();
    },
  );
  try {
    for (;;) {
      const p = queue.shift();
      if (p) yield p;
      else if (done) break;
      else await new Promise<void>((r) => (wake = r));
      wake = null;
    }
    if (failure) throw (failure as { err: unknown }).err;
  } finally {
    inner.abort(); // the consumer stopped early, or we are done
  }
}
