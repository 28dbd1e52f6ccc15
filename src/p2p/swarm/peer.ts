/** What a torrent knows about one connected peer: choke/interest state both ways, its pieces, our requests. */
import type { PeerAddress } from "../discovery.ts";
import type { ExtHandshake } from "../wire/extension.ts";
import { Reserved } from "../wire/messages.ts";
import type { PeerWire } from "../wire/peer.ts";
import type { BlockRequest } from "./picker.ts";
import { Rate } from "./ratelimit.ts";

/** Their requests we keep queued at most; more is a flood and drops the peer. */
export const MAX_QUEUED_REQUESTS = 1000;

export class Peer {
  readonly wire: PeerWire;
  /** Address it listens on when known (we dialed it, or its BEP 10 `p`), for PEX and bans. */
  listen: PeerAddress | undefined;
  readonly fast: boolean;
  readonly extended: boolean;
  readonly dht: boolean;
  amChoking = true;
  amInterested = false;
  peerChoking = true;
  peerInterested = false;
  /** Its pieces (null until a bitfield/have-all/have-none or, for a magnet, until we know the piece count). */
  bits: Buffer | null = null;
  /** Pieces set in `bits`. */
  haveCount = 0;
  /** What it announced before we had the metadata (replayed once we do). */
  early: { all?: boolean; bits?: Buffer; haves: number[] } = { haves: [] };
  ext: ExtHandshake | null = null;
  /** Our requests to it, by "index:begin". */
  readonly inflight = new Map<string, BlockRequest>();
  /** Pieces it lets us request while choked (BEP 6). */
  readonly allowedFast = new Set<number>();
  /** Its requests to us, served in order (when seeding, pieces the swarm lacks first: Torrent.nextServe). */
  queue: BlockRequest[] = [];
  /** Pieces we sent it any block of. */
  readonly given = new Set<number>();
  /** Pieces we refused it as a seed (another peer has them): when we first did, how often (Torrent.nextServe). */
  readonly deferred = new Map<number, { at: number; n: number }>();
  /** Bytes of its requests we refused that way: a seed's choker counts them as given, so its slot rotates on. */
  refusedBytes = 0;
  pumping = false;
  readonly down = new Rate();
  readonly up = new Rate();
  /** Blocks it sent that belonged to pieces failing their hash. */
  strikes = 0;
  readonly connectedAt = Date.now();
  /** Max requests it accepts at once (BEP 10 reqq). */
  reqq = 250;

  constructor(wire: PeerWire, dialed?: PeerAddress) {
    this.wire = wire;
    this.listen = dialed;
    this.fast = Reserved.fast(wire.theirs.reserved);
    this.extended = Reserved.extended(wire.theirs.reserved);
    this.dht = Reserved.dht(wire.theirs.reserved);
  }

  /**
   * One of our nodes (peer id `-AM`): it honours a seed's refusal (picker.ts) by asking the piece elsewhere and
   * us again later; refused that way, aria2 1.36 stalled at 0 B (p2p-interop), so only our peers are refused.
   */
  get ours(): boolean {
    return this.wire.theirs.peerId.subarray(0, 3).toString("latin1") === "-AM";
  }

  get id(): string {
    return this.wire.theirs.peerId.toString("hex");
  }

  get label(): string {
    return `${this.wire.remote.host}:${this.wire.remote.port}`;
  }
}

export const blockKey = (r: { index: number; begin: number }): string => `${r.index}:${r.begin}`;
