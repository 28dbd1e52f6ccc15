/**
 * The room DAG's write plan and SQL both backends share (docs/ARCHITECTURE.md "Room DAG"): which state groups a
 * timeline event creates, and the statement that reads a group's full state by walking its delta chain.
 */
import { type NewEvent, STATE_CHAIN_MAX, type StateEntry } from "./types.ts";

/** A state group a persist creates: `prev` plus `entries`, or (copyFrom set) a snapshot of copyFrom's state plus entries. */
export interface GroupPlan {
  id: number;
  prev: number | null;
  chain: number;
  entries: StateEntry[];
  /** Snapshot: copy this group's full state (less the keys of `entries`) into the new group. */
  copyFrom: number | null;
}

export interface StatePlan {
  before: number | null;
  after: number | null;
  /** Deltas between `after` and its last snapshot. */
  afterChain: number;
  groups: GroupPlan[];
}

/** The groups a timeline event creates (none for a non-state event on an existing group); null without NewEvent.state. */
export function planEventState(e: NewEvent): StatePlan | null {
  const st = e.state;
  if (!st) return null;
  const groups: GroupPlan[] = [];
  let before = st.before;
  let chain = st.beforeChain;
  if (st.resolved) {
    before = -e.stream;
    chain = 0;
    groups.push({ id: before, prev: null, chain: 0, entries: st.resolved, copyFrom: null });
  }
  if (e.stateKey === null) return { before, after: before, afterChain: chain, groups };
  const own: StateEntry = { type: e.type, stateKey: e.stateKey, eventId: e.eventId };
  const id = e.stream;
  if (before === null) groups.push({ id, prev: null, chain: 0, entries: [own], copyFrom: null });
  else if (chain + 1 > STATE_CHAIN_MAX) groups.push({ id, prev: null, chain: 0, entries: [own], copyFrom: before });
  else groups.push({ id, prev: before, chain: chain + 1, entries: [own], copyFrom: null });
  return { before, after: id, afterChain: groups[groups.length - 1].chain, groups };
}

/** The IDs of a PDU's prev_events or auth_events (room versions 3+: a list of strings), deduplicated. */
export function idList(v: unknown): string[] {
  if (!Array.isArray(v)) return [];
  return [...new Set(v.filter((x): x is string => typeof x === "string"))];
}

/**
 * The full state of group `?` as (type, state_key, event_id) rows: walk prev_id to the snapshot (at most
 * STATE_CHAIN_MAX hops), the nearest group's entry winning for each key. One `?` placeholder.
 */
export const GROUP_STATE = `WITH RECURSIVE chain(id, n) AS (
    SELECT CAST(? AS BIGINT), 0
    UNION ALL
    SELECT g.prev_id, c.n + 1 FROM chain c JOIN state_groups g ON g.id = c.id WHERE g.prev_id IS NOT NULL
  )
  SELECT x.type, x.state_key, x.event_id FROM (
    SELECT s.type, s.state_key, s.event_id,
      ROW_NUMBER() OVER (PARTITION BY s.type, s.state_key ORDER BY c.n) AS rn
    FROM chain c JOIN state_group_state s ON s.group_id = c.id) x
  WHERE x.rn = 1`;

/** Into new group `?1`, copy group `?2`'s full state less key (`?3`, `?4`): a snapshot rebasing a long chain. */
export const COPY_GROUP_STATE = `INSERT INTO state_group_state (group_id, type, state_key, event_id)
  SELECT CAST(? AS BIGINT), y.type, y.state_key, y.event_id FROM (${GROUP_STATE}) y
  WHERE NOT (y.type = ? AND y.state_key = ?)`;

/** Parameters of COPY_GROUP_STATE for a snapshot plan (its one entry is the event's own key). */
export const copyParams = (g: GroupPlan): [number, number, string, string] => [
  g.id,
  g.copyFrom as number,
  g.entries[0].type,
  g.entries[0].stateKey,
];
