/**
 * The GC race of the conformance suite: putters (some pinning at commit, some not), a pinner, an unpinner and
 * readers run against a GC loop, all decided by one seeded PRNG. Objects are built from a small pool of blocks so
 * chunks are shared between held and unheld objects. Every held object must read back whole and verified, during
 * the race and after a final GC, and verify() must find nothing missing.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { AmiError } from "../core/errors.ts";
import { prngBytes, rng } from "../core/prng.ts";
import type { CasStore } from "./types.ts";

const BLOCK = 150_000;

async function readSha(store: CasStore, id: string): Promise<string> {
  const h = createHash("sha256");
  for await (const b of store.get(id)) h.update(b);
  return h.digest("hex");
}

export async function gcRace(store: CasStore, seed: number, rounds = 30, minGcs = 4): Promise<void> {
  const rand = rng(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  const blocks = Array.from({ length: 6 }, (_, i) => prngBytes(`gc-race-${seed}-${i}`, BLOCK));
  const known = new Map<string, string>(); // id -> expected sha256, every object ever put
  // The holds the test took (each name used once, so a release never undoes another worker's hold): an id
  // in here must never be lost.
  const held = new Map<string, Set<string>>();
  const heldIds = () => [...held.keys()];
  const addHold = (id: string, name: string) => held.set(id, (held.get(id) ?? new Set()).add(name));
  const reading = new Map<string, number>();
  let stop = false;
  let gcs = 0;
  let checks = 0;
  let names = 0;

  const checkHeld = async (id: string) => {
    reading.set(id, (reading.get(id) ?? 0) + 1); // before the first await: the unpinner sees it at once
    try {
      assert.equal(await readSha(store, id), known.get(id), `held object ${id} read back wrong`);
      checks++;
    } finally {
      reading.set(id, reading.get(id)! - 1);
    }
  };

  const putter = async (n: number) => {
    // Keep putting until enough GCs have run in the middle of the puts (a fast backend finishes rounds early).
    for (let i = 0; i < rounds || gcs < minGcs; i++) {
      const parts = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => pick(blocks));
      if (rand() < 0.3) parts.push(prngBytes(`gc-race-${seed}-${n}-${i}`, Math.floor(rand() * 70_000)));
      const name = `put-${names++}`;
      const hold = rand() < 0.6;
      const r = await store.put(Buffer.concat(parts), hold ? { hold: name } : {});
      known.set(r.id, r.sha256);
      if (hold) {
        addHold(r.id, name);
        await checkHeld(r.id);
      }
    }
  };

  const pinner = async () => {
    while (!stop) {
      const id = pick([...known.keys()]);
      if (id) {
        const name = `pin-${names++}`;
        const wasHeld = held.has(id);
        reading.set(id, (reading.get(id) ?? 0) + 1); // the unpinner keeps off while we look
        try {
          await store.hold(id, name);
          addHold(id, name);
          await checkHeld(id);
        } catch (e) {
          // Only an object nobody held may have been collected.
          if (!(e instanceof AmiError && e.code === "M_NOT_FOUND") || wasHeld) throw e;
        } finally {
          reading.set(id, reading.get(id)! - 1);
        }
      }
      await new Promise((r) => setImmediate(r));
    }
  };

  const unpinner = async () => {
    while (!stop) {
      const id = pick(heldIds());
      if (id && !reading.get(id) && rand() < 0.5) {
        const hs = held.get(id)!;
        const name = pick([...hs]);
        hs.delete(name);
        if (hs.size === 0) held.delete(id);
        await store.release(id, name);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };

  const reader = async () => {
    while (!stop) {
      const id = pick(heldIds());
      if (id) await checkHeld(id);
      else await new Promise((r) => setImmediate(r));
    }
  };

  const collector = async () => {
    while (!stop) {
      await store.gc();
      gcs++;
    }
  };

  const background = [pinner(), unpinner(), reader(), collector()];
  try {
    await Promise.all([putter(0), putter(1), putter(2)]);
  } finally {
    stop = true;
    await Promise.allSettled(background);
  }
  await Promise.all(background);
  await store.gc();
  for (const id of heldIds()) await checkHeld(id);
  const v = await store.verify();
  assert.deepEqual(v.corrupt, []);
  assert.ok(gcs > 0 && checks > 0);
  console.log(
    `# gc race seed ${seed}: ${known.size} objects, ${held.size} held at the end, ${gcs} GCs, ${checks} reads checked`,
  );
}
