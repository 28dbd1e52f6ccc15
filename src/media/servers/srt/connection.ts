/**
 * One established SRT session in live mode (draft-sharabayko-srt sections 4.5-4.8), as libsrt's peer expects it:
 *
 * Receiving (a publisher): data packets go into a receive buffer by 31-bit sequence number; a gap is reported at
 * once in a NAK (ranges compressed) and again periodically while it lasts; a full ACK goes out at most every 10 ms when
 * the acknowledged number moved (RTT, RTT variance, free buffer, rates): from the data path when a packet arrives
 * 10 ms or more after the last ACK (a frame's burst), else at the next wake-up (within 50 ms); the peer's ACKACK gives the RTT. Payloads
 * are delivered in order at their timestamp + the negotiated latency (TSBPD); a missing packet whose successor is
 * due is given up (TLPKTDROP), so one loss never stalls the stream.
 *
 * Sending (a reader): payloads (7 TS packets) go out with the time since the session started; a send buffer keeps
 * them for retransmission on NAK until acknowledged or older than the drop delay; an ACK is answered with ACKACK.
 *
 * Both: keepalive after a second of silence, shutdown either way, and a peer silent for `peerIdleMs` is gone.
 * Nothing runs on a fixed period: `wakeAt` says when `tick` next has work (a packet due, a NAK to repeat, a
 * keepalive, the idle limit, a sent packet to forget), and the server wakes for the earliest of all sessions.
 * Payloads are AES-CTR encrypted/decrypted with the session's key material when the caller sent one.
 */
import { ctr, type KeyMaterial } from "./crypto.ts";
import {
  CTRL_ACK,
  CTRL_ACKACK,
  CTRL_DROPREQ,
  CTRL_EXT,
  CTRL_KEEPALIVE,
  CTRL_NAK,
  CTRL_SHUTDOWN,
  control,
  controlType,
  decodeLoss,
  EXT_KMREQ,
  EXT_KMRSP,
  encodeLoss,
  HEADER,
  isControl,
  KK_SHIFT,
  LossList,
  MSGNO_MASK,
  PP_SOLO,
  REXMIT_BIT,
  seqAdd,
  seqDiff,
} from "./packet.ts";

export interface ConnectionOptions {
  /** Sends one datagram to the peer. */
  send: (b: Buffer) => void;
  peerSocketId: number;
  /** The initial sequence number, both ways (HSv5: the caller's). */
  isn: number;
  /** Negotiated latency of our receiving side and of the peer's (our sending side), ms. */
  rcvLatencyMs: number;
  sndLatencyMs: number;
  /** Receive and send buffer caps in packets. */
  rcvBufferPackets: number;
  sndBufferPackets: number;
  /** Key material from the caller's KMREQ (undefined: clear payloads). */
  km: KeyMaterial | undefined;
  /** Opens a KM refresh (KMREQ after the handshake) with the session's passphrase. */
  openKm?: (msg: Buffer) => KeyMaterial | undefined;
  /** In-order payloads (a publisher's MPEG-TS), at their delivery time. */
  onData?: (payload: Buffer) => void;
  /** The session ended: peer shutdown, timeout, undecryptable data... */
  onClose: (reason: string) => void;
  peerIdleMs?: number;
  /** Shared byte budget of all sessions' receive buffers (false: over it, the packet is dropped). */
  budget?: { take(n: number): boolean; give(n: number): void };
  /** Clock in µs (tests). */
  now?: () => number;
}

export interface ConnectionStats {
  packetsReceived: number;
  packetsLost: number;
  packetsDropped: number;
  packetsRetransmitted: number;
  packetsSent: number;
  naksSent: number;
  rttUs: number;
}

interface SndEntry {
  packet: Buffer;
  at: number;
  /** Retransmissions so far, and when the last one went out. */
  rexmits: number;
  rexmitAt: number;
}

const ACK_INTERVAL_US = 10_000;
/** An ACK owed waits at most this long for a packet (or a delivery) to carry it out before a wake-up of its own. */
const ACK_DELAY_MAX_US = 50_000;
const KEEPALIVE_US = 1_000_000;
const MIN_NAK_INTERVAL_US = 20_000;
/** The sender keeps a packet at least this long (libsrt's SRT_TLPKTDROP_MINTHRESHOLD_MS) for retransmission. */
const SND_DROP_MIN_US = 1_000_000;
/** Receive-time base tracking: the minimum (arrival - timestamp) over this many packets re-anchors TSBPD. */
const DRIFT_WINDOW = 1000;
/** Payloads that fail to decrypt in a row before the session is given up (a wrong key). */
const MAX_UNDECRYPTABLE = 16;
const RATE_WINDOW_US = 1_000_000;
/**
 * A packet is retransmitted at most this many times, and not again within MIN_REXMIT_INTERVAL_US (a receiver's
 * periodic NAK repeats no faster than 20 ms): a peer NAKing everything over and over gets a bounded multiple of the
 * stream, not a flood. One NAK's ranges are walked for at most a send buffer's worth of sequence numbers.
 */
const MAX_REXMITS = 16;
const MIN_REXMIT_INTERVAL_US = 10_000;
const defaultNow = () => performance.now() * 1000;

export class SrtConnection {
  readonly stats: ConnectionStats = {
    packetsReceived: 0,
    packetsLost: 0,
    packetsDropped: 0,
    packetsRetransmitted: 0,
    packetsSent: 0,
    naksSent: 0,
    rttUs: 100_000,
  };
  readonly #o: ConnectionOptions;
  readonly #now: () => number;
  readonly #start: number;
  #closed = false;
  #km: KeyMaterial | undefined;
  #lastHeard: number;
  #lastSent: number;
  #rttVar = 50_000;
  // Receiving.
  /** Payloads by sequence number & mask, and their (unwrapped) timestamps: no object per packet. */
  readonly #rcv: (Buffer | undefined)[];
  readonly #rcvTs: Float64Array;
  readonly #rcvMask: number;
  /** The next sequence number to deliver. */
  #rcvNext: number;
  /** The highest sequence number received (isn - 1: none yet). */
  #rcvMax: number;
  #rcvBytes = 0;
  readonly #loss = new LossList();
  #ackNo = 0;
  readonly #acks = new Map<number, number>();
  #lastAckSeq = -1;
  #lastAckAt = 0;
  #lastNakAt = 0;
  #undecryptable = 0;
  #lastKmAt = Number.NEGATIVE_INFINITY;
  /** TSBPD: local time (µs) of timestamp 0, from the minimum transit seen. */
  #base: number | undefined;
  #windowMin = Number.POSITIVE_INFINITY;
  #windowCount = 0;
  #lastTs = 0;
  #rateStart = 0;
  #ratePackets = 0;
  #rateBytes = 0;
  #pktRate = 0;
  #byteRate = 0;
  // Sending.
  readonly #snd: (SndEntry | undefined)[];
  readonly #sndMask: number;
  /** The oldest unacknowledged sequence number and the next to send. */
  #sndOldest: number;
  #sndNext: number;
  #msgNo = 1;

  constructor(o: ConnectionOptions) {
    this.#o = o;
    this.#now = o.now ?? defaultNow;
    this.#start = this.#now();
    this.#lastHeard = this.#start;
    this.#lastSent = this.#start;
    this.#km = o.km;
    const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(16, n)));
    this.#rcv = new Array(pow2(o.rcvBufferPackets));
    this.#rcvMask = this.#rcv.length - 1;
    this.#rcvTs = new Float64Array(this.#rcv.length);
    this.#snd = new Array(pow2(o.sndBufferPackets));
    this.#sndMask = this.#snd.length - 1;
    this.#rcvNext = o.isn;
    this.#rcvMax = seqAdd(o.isn, -1);
    this.#sndOldest = o.isn;
    this.#sndNext = o.isn;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Packets waiting in the receive buffer and unacknowledged in the send buffer. */
  get buffered(): { rcv: number; snd: number; rcvBytes: number } {
    return {
      rcv: Math.max(0, seqDiff(this.#rcvNext, this.#rcvMax) + 1),
      snd: seqDiff(this.#sndOldest, this.#sndNext),
      rcvBytes: this.#rcvBytes,
    };
  }

  #ts(now: number): number {
    return Math.floor(now - this.#start) >>> 0;
  }

  #sendCtrl(type: number, typeInfo: number, cif?: number[] | Buffer, subtype = 0): void {
    const now = this.#now();
    this.#lastSent = now;
    this.#o.send(control(type, typeInfo, this.#ts(now), this.#o.peerSocketId, cif, subtype));
  }

  /**
   * When `tick` next has something to do (µs, the `now` clock): the next buffered packet's delivery time (or its
   * successor's, behind a gap), the next NAK repeat while losses last, an ACK not sent yet, a keepalive, the idle
   * limit; sending: the oldest unacknowledged packet's drop time.
   */
  get wakeAt(): number {
    if (this.#closed) return Number.POSITIVE_INFINITY;
    let at = Math.min(this.#lastHeard + (this.#o.peerIdleMs ?? 5000) * 1000 + 1, this.#lastSent + KEEPALIVE_US);
    if (this.#o.onData) {
      if (this.#base !== undefined && seqDiff(this.#rcvNext, this.#rcvMax) >= 0) {
        let slot = this.#rcvNext & this.#rcvMask;
        if (!this.#rcv[slot]) {
          const range = this.#loss.ranges[0];
          const after = range && range[0] === this.#rcvNext ? seqAdd(range[1], 1) : seqAdd(this.#rcvNext, 1);
          slot = seqDiff(after, this.#rcvMax) >= 0 ? after & this.#rcvMask : -1;
        }
        if (slot >= 0 && this.#rcv[slot])
          at = Math.min(at, this.#base + (this.#rcvTs[slot] as number) + this.#o.rcvLatencyMs * 1000);
      }
      if (this.#loss.ranges.length)
        at = Math.min(at, this.#lastNakAt + Math.max(MIN_NAK_INTERVAL_US, this.stats.rttUs + 4 * this.#rttVar));
      if (this.stats.packetsReceived > 0 && this.#ackSeq() !== this.#lastAckSeq)
        at = Math.min(at, this.#lastAckAt + ACK_DELAY_MAX_US);
    } else if (this.#sndOldest !== this.#sndNext) {
      const e = this.#snd[this.#sndOldest & this.#sndMask];
      at = Math.min(at, e ? e.at + this.#sndDropUs() : 0);
    }
    return at;
  }

  /** A datagram from the peer (after the handshake). */
  input(b: Buffer): void {
    if (this.#closed || b.length < HEADER) return;
    this.#lastHeard = this.#now();
    if (!isControl(b)) {
      this.#onData(b);
      return;
    }
    switch (controlType(b)) {
      case CTRL_ACK:
        this.#onAck(b);
        break;
      case CTRL_NAK:
        this.#onNak(b);
        break;
      case CTRL_ACKACK:
        this.#onAckAck(b.readUInt32BE(4));
        break;
      case CTRL_SHUTDOWN:
        // What already arrived is the end of the stream: delivered now rather than lost with the session.
        this.#flush();
        this.close("the peer closed the session", false);
        break;
      case CTRL_DROPREQ:
        if (b.length >= HEADER + 8) this.#dropUpTo(seqAdd(b.readUInt32BE(HEADER + 4) & 0x7fffffff, 1));
        break;
      case CTRL_EXT:
        if ((b.readUInt16BE(2) & 0xffff) === EXT_KMREQ) this.#onKmRefresh(b.subarray(HEADER));
        break;
      default:
        // Keepalive, congestion warning, peer error, handshake repeats: being heard is enough.
        break;
    }
  }

  // ---- receiving -------------------------------------------------------------------------------------------

  #onData(b: Buffer): void {
    const seq = b.readUInt32BE(0) & 0x7fffffff;
    const w1 = b.readUInt32BE(4);
    const kk = (w1 >>> KK_SHIFT) & 3;
    this.stats.packetsReceived++;
    const d = seqDiff(this.#rcvNext, seq);
    // Behind the delivery point (a late retransmission, a duplicate) or beyond the buffer: nothing to keep.
    if (d < 0 || d > this.#rcvMask || !this.#o.onData) return;
    const slot = seq & this.#rcvMask;
    if (this.#rcv[slot]) return;
    // dgram hands every datagram its own buffer: the payload is kept as a view, not copied.
    let payload = b.subarray(HEADER);
    if (kk) {
      const clear = this.#km ? ctr(this.#km, kk, seq, payload) : undefined;
      if (!clear) {
        if (++this.#undecryptable >= MAX_UNDECRYPTABLE) this.close("the peer's packets cannot be decrypted", true);
        return;
      }
      payload = clear;
    } else if (this.#km) {
      // Clear payloads on an encrypted session: not what the key exchange agreed.
      if (++this.#undecryptable >= MAX_UNDECRYPTABLE) this.close("the peer sends unencrypted packets", true);
      return;
    }
    this.#undecryptable = 0;
    if (this.#o.budget && !this.#o.budget.take(payload.length)) {
      this.stats.packetsDropped++;
      return;
    }
    this.#rcvBytes += payload.length;
    const ts = this.#unwrapTs(b.readUInt32BE(8));
    this.#rcv[slot] = payload;
    this.#rcvTs[slot] = ts;
    const now = this.#now();
    this.#trackBase(now, ts, (w1 & REXMIT_BIT) !== 0);
    this.#ratePackets++;
    this.#rateBytes += b.length;
    const ahead = seqDiff(this.#rcvMax, seq);
    if (ahead > 0) {
      if (ahead > 1) {
        // A gap: report it now (the periodic NAK repeats what is still missing).
        const from = seqAdd(this.#rcvMax, 1);
        const to = seqAdd(seq, -1);
        this.#loss.add(from, to);
        this.stats.packetsLost += ahead - 1;
        this.#sendCtrl(CTRL_NAK, 0, encodeLoss([[from, to]]));
        this.stats.naksSent++;
      }
      this.#rcvMax = seq;
    } else this.#loss.remove(seq);
    this.#deliver(now);
    // The first packet of a burst acknowledges the last one: no wake-up is needed just for the ACK.
    if (!this.#closed && now - this.#lastAckAt >= ACK_INTERVAL_US) this.#sendAck(now);
  }

  #unwrapTs(ts: number): number {
    const d = (ts - (this.#lastTs % 0x100000000)) | 0;
    const t = this.#lastTs + d;
    if (d > 0) this.#lastTs = t;
    return t;
  }

  #trackBase(now: number, ts: number, rexmit: boolean): void {
    const transit = now - ts;
    if (this.#base === undefined) this.#base = transit;
    if (rexmit) return;
    if (transit < this.#windowMin) this.#windowMin = transit;
    if (++this.#windowCount >= DRIFT_WINDOW) {
      // Clock drift between the peers moves the minimum transit; follow it once it is clear (over 2 ms).
      if (Math.abs(this.#windowMin - this.#base) > 2000) this.#base = this.#windowMin;
      this.#windowMin = Number.POSITIVE_INFINITY;
      this.#windowCount = 0;
    }
  }

  /** Delivers every packet that is due, in order, giving up missing ones whose successors are due (TLPKTDROP). */
  #deliver(now: number): void {
    if (this.#base === undefined) return;
    const latency = this.#o.rcvLatencyMs * 1000;
    while (seqDiff(this.#rcvNext, this.#rcvMax) >= 0) {
      const slot = this.#rcvNext & this.#rcvMask;
      const e = this.#rcv[slot];
      if (e) {
        if (this.#base + (this.#rcvTs[slot] as number) + latency > now) return;
        this.#rcv[slot] = undefined;
        this.#rcvBytes -= e.length;
        this.#o.budget?.give(e.length);
        this.#rcvNext = seqAdd(this.#rcvNext, 1);
        this.#o.onData?.(e);
        if (this.#closed) return;
        continue;
      }
      // Missing: the first packet after the gap decides whether it is still worth waiting for.
      const range = this.#loss.ranges[0];
      const after = range && range[0] === this.#rcvNext ? seqAdd(range[1], 1) : seqAdd(this.#rcvNext, 1);
      const next = after & this.#rcvMask;
      if (!this.#rcv[next] || seqDiff(after, this.#rcvMax) < 0) return;
      if (this.#base + (this.#rcvTs[next] as number) + latency > now) return;
      this.stats.packetsDropped += seqDiff(this.#rcvNext, after);
      this.#rcvNext = after;
      this.#loss.dropBefore(after);
    }
  }

  /** Delivers every buffered packet in order at once, skipping gaps (the peer has ended). */
  #flush(): void {
    while (!this.#closed && seqDiff(this.#rcvNext, this.#rcvMax) >= 0) {
      const slot = this.#rcvNext & this.#rcvMask;
      const e = this.#rcv[slot];
      this.#rcvNext = seqAdd(this.#rcvNext, 1);
      if (!e) continue;
      this.#rcv[slot] = undefined;
      this.#rcvBytes -= e.length;
      this.#o.budget?.give(e.length);
      this.#o.onData?.(e);
    }
  }

  /** The peer gave up packets before `s` (DROPREQ): stop waiting for them. */
  #dropUpTo(s: number): void {
    const d = seqDiff(this.#rcvNext, s);
    if (d <= 0 || d > this.#rcvMask) return;
    for (let q = this.#rcvNext; q !== s; q = seqAdd(q, 1)) {
      const e = this.#rcv[q & this.#rcvMask];
      if (e) return; // only a leading gap is skipped; data that arrived is delivered
      this.#rcvNext = seqAdd(q, 1);
    }
    // Dropped past everything received: nothing before rcvNext may be reported lost when the next packet comes.
    if (seqDiff(this.#rcvMax, this.#rcvNext) > 1) this.#rcvMax = seqAdd(this.#rcvNext, -1);
    this.#loss.dropBefore(this.#rcvNext);
  }

  /** The first sequence number not received: what a full ACK acknowledges up to. */
  #ackSeq(): number {
    return this.#loss.first ?? seqAdd(this.#rcvMax, 1);
  }

  #sendAck(now: number): void {
    const seq = this.#ackSeq();
    if (seq === this.#lastAckSeq && now - this.#lastAckAt < 10 * ACK_INTERVAL_US) return;
    if (now - this.#rateStart >= RATE_WINDOW_US) {
      const secs = (now - this.#rateStart) / 1e6;
      this.#pktRate = Math.round(this.#ratePackets / secs);
      this.#byteRate = Math.round(this.#rateBytes / secs);
      this.#ratePackets = 0;
      this.#rateBytes = 0;
      this.#rateStart = now;
    }
    this.#lastAckSeq = seq;
    this.#lastAckAt = now;
    this.#ackNo = (this.#ackNo + 1) & 0x7fffffff || 1;
    this.#acks.set(this.#ackNo, now);
    if (this.#acks.size > 64) this.#acks.delete(this.#acks.keys().next().value as number);
    const free = Math.max(2, this.#rcv.length - Math.max(0, seqDiff(this.#rcvNext, this.#rcvMax) + 1));
    const rtt = Math.round(this.stats.rttUs);
    this.#sendCtrl(CTRL_ACK, this.#ackNo, [
      seq,
      rtt,
      Math.round(this.#rttVar),
      free,
      this.#pktRate,
      this.#pktRate * 2,
      this.#byteRate,
    ]);
  }

  #onAckAck(ackNo: number): void {
    const at = this.#acks.get(ackNo);
    if (at === undefined) return;
    this.#acks.delete(ackNo);
    this.#rtt(this.#now() - at);
  }

  #rtt(sample: number): void {
    this.#rttVar = (3 * this.#rttVar + Math.abs(this.stats.rttUs - sample)) / 4;
    this.stats.rttUs = (7 * this.stats.rttUs + sample) / 8;
  }

  #sendNak(now: number): void {
    const interval = Math.max(MIN_NAK_INTERVAL_US, this.stats.rttUs + 4 * this.#rttVar);
    if (!this.#loss.ranges.length || now - this.#lastNakAt < interval) return;
    this.#lastNakAt = now;
    this.#sendCtrl(CTRL_NAK, 0, encodeLoss(this.#loss.ranges));
    this.stats.naksSent++;
  }

  #onKmRefresh(msg: Buffer): void {
    // Opening one costs a PBKDF2 (2048 rounds) for a new salt: a peer gets one a second.
    const now = this.#now();
    if (now - this.#lastKmAt < 1_000_000) return;
    this.#lastKmAt = now;
    const km = this.#o.openKm?.(msg);
    if (km) this.#km = km;
    // Echoed when it opened; the single word SRT_KM_S_BADSECRET (4) when it did not.
    this.#sendCtrl(CTRL_EXT, 0, km ? msg : [4], EXT_KMRSP);
  }

  // ---- sending ---------------------------------------------------------------------------------------------

  /** Sends one payload (at most 1316 bytes: 7 TS packets) as the next data packet. */
  write(payload: Buffer): void {
    if (this.#closed) return;
    if (seqDiff(this.#sndOldest, this.#sndNext) >= this.#snd.length) {
      // The buffer is full of unacknowledged packets: the oldest can no longer be retransmitted.
      this.#snd[this.#sndOldest & this.#sndMask] = undefined;
      this.#sndOldest = seqAdd(this.#sndOldest, 1);
      this.stats.packetsDropped++;
    }
    const now = this.#now();
    const seq = this.#sndNext;
    const kk = this.#km ? (this.#km.even ? 1 : 2) : 0;
    const body = this.#km ? (ctr(this.#km, kk, seq, payload) as Buffer) : payload;
    const p = Buffer.allocUnsafe(HEADER + body.length);
    p.writeUInt32BE(seq, 0);
    p.writeUInt32BE((PP_SOLO | (kk << KK_SHIFT) | (this.#msgNo & MSGNO_MASK)) >>> 0, 4);
    p.writeUInt32BE(this.#ts(now), 8);
    p.writeUInt32BE(this.#o.peerSocketId >>> 0, 12);
    body.copy(p, HEADER);
    this.#msgNo = (this.#msgNo + 1) & MSGNO_MASK || 1;
    this.#snd[seq & this.#sndMask] = { packet: p, at: now, rexmits: 0, rexmitAt: Number.NEGATIVE_INFINITY };
    this.#sndNext = seqAdd(seq, 1);
    this.#lastSent = now;
    this.stats.packetsSent++;
    this.#o.send(p);
  }

  #onAck(b: Buffer): void {
    if (b.length < HEADER + 4) return;
    const seq = b.readUInt32BE(HEADER) & 0x7fffffff;
    // A full ACK (more than the acknowledged number) wants its ACKACK for the peer's RTT.
    if (b.length >= HEADER + 16) {
      this.#sendCtrl(CTRL_ACKACK, b.readUInt32BE(4));
      const rtt = b.readUInt32BE(HEADER + 4);
      if (rtt > 0 && rtt < 10_000_000) this.stats.rttUs = rtt;
    }
    const d = seqDiff(this.#sndOldest, seq);
    if (d <= 0 || seqDiff(seq, this.#sndNext) < 0) return;
    for (let s = this.#sndOldest; s !== seq; s = seqAdd(s, 1)) this.#snd[s & this.#sndMask] = undefined;
    this.#sndOldest = seq;
  }

  #onNak(b: Buffer): void {
    const gone: [number, number][] = [];
    const now = this.#now();
    let budget = this.#snd.length;
    for (const [from, to] of decodeLoss(b)) {
      if (budget <= 0) break;
      const n = Math.min(seqDiff(from, to), budget - 1);
      for (let i = 0, s = from; i <= n; i++, s = seqAdd(s, 1)) {
        budget--;
        if (seqDiff(s, this.#sndNext) <= 0) break;
        const e = seqDiff(this.#sndOldest, s) >= 0 ? this.#snd[s & this.#sndMask] : undefined;
        if (!e) {
          const last = gone[gone.length - 1];
          if (last && seqAdd(last[1], 1) === s) last[1] = s;
          else gone.push([s, s]);
          continue;
        }
        if (e.rexmits >= MAX_REXMITS || now - e.rexmitAt < MIN_REXMIT_INTERVAL_US) continue;
        e.rexmits++;
        e.rexmitAt = now;
        const w1 = e.packet.readUInt32BE(4);
        e.packet.writeUInt32BE((w1 | REXMIT_BIT) >>> 0, 4);
        this.stats.packetsRetransmitted++;
        this.#o.send(e.packet);
      }
    }
    // What we no longer have: tell the receiver to stop asking (DROPREQ).
    for (const [from, to] of gone.slice(0, 16)) this.#sendCtrl(CTRL_DROPREQ, 0, [from, to]);
  }

  /** Sender: packets older than the drop delay are given up (the receiver has dropped them too). */
  #sndDropUs(): number {
    return Math.max(SND_DROP_MIN_US, 1250 * this.#o.sndLatencyMs) + 2 * ACK_INTERVAL_US;
  }

  #dropOld(now: number): void {
    const limit = this.#sndDropUs();
    while (this.#sndOldest !== this.#sndNext) {
      const e = this.#snd[this.#sndOldest & this.#sndMask];
      if (e && now - e.at < limit) return;
      this.#snd[this.#sndOldest & this.#sndMask] = undefined;
      this.#sndOldest = seqAdd(this.#sndOldest, 1);
      if (e) this.stats.packetsDropped++;
    }
  }

  // ---- both ------------------------------------------------------------------------------------------------

  /** Whatever is due (see `wakeAt`; calling it more often is harmless): delivery, ACK, NAK, drops, keepalive, peer timeout. */
  tick(): void {
    if (this.#closed) return;
    const now = this.#now();
    if (now - this.#lastHeard > (this.#o.peerIdleMs ?? 5000) * 1000) {
      this.close("the peer went silent", false);
      return;
    }
    if (this.#o.onData) {
      this.#deliver(now);
      if (this.#closed) return;
      if (this.stats.packetsReceived > 0 && now - this.#lastAckAt >= ACK_INTERVAL_US) this.#sendAck(now);
      this.#sendNak(now);
    } else this.#dropOld(now);
    if (now - this.#lastSent > KEEPALIVE_US) this.#sendCtrl(CTRL_KEEPALIVE, 0);
  }

  /** Ends the session; `notify`: tell the peer (shutdown). */
  close(reason: string, notify = true): void {
    if (this.#closed) return;
    if (notify) this.#sendCtrl(CTRL_SHUTDOWN, 0);
    this.#closed = true;
    for (let i = 0; i < this.#rcv.length; i++) {
      const e = this.#rcv[i];
      if (e) this.#o.budget?.give(e.length);
      this.#rcv[i] = undefined;
    }
    this.#rcvBytes = 0;
    this.#snd.fill(undefined);
    this.#o.onClose(reason);
  }
}
