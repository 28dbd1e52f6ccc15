/**
 * One federation sender per cluster (docs/ARCHITECTURE.md "Homeserver scale-out"): the worker holding a Redis
 * lease (SET NX PX, renewed by a compare-and-expire script) sends every transaction; the others hand what they
 * would have queued to it over the bus (federation/sender.ts Handover). So two workers never send transactions to
 * one destination at once, in two orders, with two retry states. A sender that dies stops renewing: the lease
 * expires after LEASE_MS and another worker takes it, loads the owed events, the to-device outbox and the retry
 * state from the store (what the dead one had in memory only — typing, receipts, presence not yet sent — is lost,
 * as it is on a restart).
 *
 * Safety against a sender paused past its lease (GC, a stopped VM): it counts its lease from when it *asked* for
 * the renewal, less a margin, and sends nothing past that (`valid()` checked before each transaction), so by the
 * time Redis lets another worker take the lease, the old one has stopped on its own clock.
 */
import type { Redis } from "ioredis";
import type { Logger } from "../../core/logger.ts";
import type { FederationSender, Handover } from "../federation/sender.ts";
import type { RedisBus } from "./bus.ts";

/** How long a lease lasts without renewal (the failover time after a sender dies, plus up to one RENEW_MS). */
export const LEASE_MS = 6_000;
const RENEW_MS = 1_500;
/** Taken off the local view of the lease: clocks run at slightly different rates, the renewal takes a while. */
const MARGIN_MS = 1_000;

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export class SenderLease {
  readonly #redis: Redis;
  readonly #key: string;
  readonly #id: string;
  readonly #sender: FederationSender;
  readonly #bus: RedisBus;
  readonly #log: Logger;
  #validUntil = 0;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #busy = false;
  #held = false;
  #offs: Array<() => void> = [];

  constructor(bus: RedisBus, sender: FederationSender, log: Logger) {
    this.#bus = bus;
    this.#redis = bus.client;
    this.#key = `${bus.channel}:federation-sender`;
    this.#id = bus.id;
    this.#sender = sender;
    this.#log = log;
  }

  /** This process holds the lease (on its own clock). */
  valid(): boolean {
    return Date.now() < this.#validUntil;
  }

  /** Follow until the first attempt to take the lease is done (so start-up knows its role), then keep trying. */
  async start(): Promise<void> {
    this.#sender.mayLead = () => this.valid();
    this.#sender.follow((h) => this.#bus.publish({ t: "fed", h }));
    this.#offs.push(
      this.#bus.subscribe((m) => {
        if (m.t === "fed" && m.h && typeof m.h === "object") this.#sender.receive(m.h as Handover);
      }),
      this.#bus.onReconnect(() => void this.#sender.recheck().catch(() => {})),
    );
    await this.#tick();
    this.#timer = setInterval(() => void this.#tick(), RENEW_MS);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    if (this.#busy || this.#closed) return;
    this.#busy = true;
    const asked = Date.now();
    try {
      if (this.#held) {
        const ok = Number(await this.#redis.eval(RENEW, 1, this.#key, this.#id, String(LEASE_MS)));
        if (ok === 1) this.#validUntil = asked + LEASE_MS - MARGIN_MS;
        else this.#lose("another worker holds the lease");
      } else {
        const ok = await this.#redis.set(this.#key, this.#id, "PX", LEASE_MS, "NX");
        if (ok === "OK" && !this.#closed) {
          this.#validUntil = asked + LEASE_MS - MARGIN_MS;
          this.#held = true;
          this.#log.info("cluster: this worker is the federation sender now", { id: this.#id });
          await this.#sender.lead();
        }
      }
    } catch (e) {
      // Redis unreachable: keep sending while the lease is valid here; past it, stop (another may take it then).
      if (this.#held && !this.valid()) this.#lose(`redis: ${String(e).slice(0, 200)}`);
    } finally {
      this.#busy = false;
    }
  }

  #lose(why: string): void {
    this.#validUntil = 0;
    this.#held = false;
    this.#log.warn("cluster: no longer the federation sender", { why });
    this.#sender.follow((h) => this.#bus.publish({ t: "fed", h }));
  }

  /** Stop, and give the lease up at once when held (a clean shutdown needs no LEASE_MS failover). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const off of this.#offs) off();
    if (this.#held && this.#redis.status === "ready")
      await this.#redis.eval(RELEASE, 1, this.#key, this.#id).catch(() => {});
    this.#validUntil = 0;
    this.#held = false;
  }

  /** Holds the lease (tests, metrics). */
  get held(): boolean {
    return this.#held;
  }
}
