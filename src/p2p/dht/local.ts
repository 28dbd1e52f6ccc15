/**
 * Hosts only processes on this machine can send from: loopback, and (on UDP) this machine's own interface
 * addresses, since the kernel drops a datagram that arrives from outside with one of them as its source (Linux:
 * net.ipv4.conf.*.accept_local is off by default). The DHT's per-IP limits (routing-table slots, nodes one walk
 * asks) exempt them: several nodes on one machine (tests against real clients that ignore loopback, a host running
 * more than one node) share its address without being a Sybil. A liar naming "nodes" at such an address can aim
 * our queries only at this machine, as it already could at 127.0.0.1.
 */
import { networkInterfaces } from "node:os";

export const isLoopback = (host: string): boolean => host.startsWith("127.");

let own: { at: number; hosts: Set<string> } | null = null;

/** This machine's IPv4 interface addresses (re-read at most every 10 s: interfaces come and go). */
function ownAddresses(): Set<string> {
  const now = Date.now();
  if (own && now - own.at < 10_000) return own.hosts;
  const hosts = new Set<string>();
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === "IPv4") hosts.add(a.address);
  own = { at: now, hosts };
  return hosts;
}

export const isLocalHost = (host: string): boolean => isLoopback(host) || ownAddresses().has(host);
