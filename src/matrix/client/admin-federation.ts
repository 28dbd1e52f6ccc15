/**
 * Federation admin API, in Synapse's shape (`/_synapse/admin/v1/federation/destinations`), with this server's
 * queue figures added: what `ami-streams matrix federation destinations|retry|status` read.
 */
import { AmiError } from "../../core/errors.ts";
import type { DestinationStatus } from "../federation/sender.ts";
import { json, type Route } from "../http/types.ts";
import { adminRoute } from "./admin-kit.ts";

function row(d: DestinationStatus): Record<string, unknown> {
  return {
    destination: d.destination,
    // Synapse's fields.
    retry_last_ts: 0,
    retry_interval: d.backoffUntil === null ? 0 : d.backoffUntil - Date.now(),
    failure_ts: null,
    // Ours.
    last_success_ts: d.lastSuccessTs,
    failures: d.failures,
    backoff_until: d.backoffUntil,
    queued_pdus: d.queuedPdus,
    queued_edus: d.queuedEdus,
    in_flight: d.inFlight,
    dropped: d.dropped,
    sent_transactions: d.sentTxns,
  };
}

export const routes: Route[] = [
  adminRoute("GET", ["/_synapse/admin/v1/federation/destinations"], async (req) => {
    const all = await req.hs.federation.sender.status();
    return json({ destinations: all.map(row), total: all.length });
  }),
  adminRoute("GET", ["/_synapse/admin/v1/federation/destinations/{destination}"], async (req) => {
    const d = (await req.hs.federation.sender.status()).find((x) => x.destination === req.params.destination);
    if (!d) throw new AmiError("M_NOT_FOUND", "Unknown destination");
    return json(row(d));
  }),
  adminRoute("POST", ["/_synapse/admin/v1/federation/destinations/{destination}/reset_connection"], async (req) => {
    const { destination } = req.params;
    const known = (await req.hs.federation.sender.status()).some((x) => x.destination === destination);
    if (!known) throw new AmiError("M_NOT_FOUND", "Unknown destination");
    const wasBackingOff = await req.hs.federation.sender.wake(destination);
    return json({ was_backing_off: wasBackingOff });
  }),
];
