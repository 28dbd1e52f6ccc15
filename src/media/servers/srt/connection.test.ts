import assert from "node:assert/strict";
import { test } from "node:test";
import { SrtConnection } from "./connection.ts";
import { isControl } from "./packet.ts";

/** A sender session and a receiver session joined by a link that may lose data packets; time is simulated. */
function pair(lose: (seq: number, rexmit: boolean) => boolean) {
  let now = 1_000_000;
  const toRcv: Buffer[] = [];
  const toSnd: Buffer[] = [];
  const delivered: number[] = [];
  const closed: string[] = [];
  const common = {
    isn: 0x7ffffff0,
    rcvLatencyMs: 120,
    sndLatencyMs: 120,
    rcvBufferPackets: 1024,
    sndBufferPackets: 1024,
    km: undefined,
    now: () => now,
  };
  const snd = new SrtConnection({
    ...common,
    peerSocketId: 2,
    send: (b) => {
      if (!isControl(b) && lose(b.readUInt32BE(0), (b.readUInt32BE(4) & 0x04000000) !== 0)) return;
      toRcv.push(Buffer.from(b));
    },
    onClose: (r) => closed.push(`snd: ${r}`),
  });
  const rcv = new SrtConnection({
    ...common,
    peerSocketId: 1,
    send: (b) => toSnd.push(Buffer.from(b)),
    onData: (p) => delivered.push(p.readUInt32BE(0)),
    onClose: (r) => closed.push(`rcv: ${r}`),
  });
  const step = (ms: number) => {
    for (let t = 0; t < ms; t++) {
      now += 1000;
      for (const b of toRcv.splice(0)) rcv.input(b);
      for (const b of toSnd.splice(0)) snd.input(b);
      if (t % 10 === 0) {
        snd.tick();
        rcv.tick();
      }
    }
  };
  return { snd, rcv, delivered, closed, step };
}

const payload = (i: number) => {
  const b = Buffer.alloc(1316);
  b.writeUInt32BE(i, 0);
  return b;
};

test("losses are NAKed and retransmitted: everything is delivered in order across the sequence wrap", () => {
  const p = pair((seq, rexmit) => !rexmit && seq % 7 === 3);
  for (let i = 0; i < 200; i++) {
    p.snd.write(payload(i));
    p.step(2);
  }
  p.step(500);
  assert.deepEqual(p.delivered, [...Array(200).keys()]);
  assert.ok(p.snd.stats.packetsRetransmitted >= 25, `${p.snd.stats.packetsRetransmitted} retransmitted`);
  assert.equal(p.rcv.stats.packetsDropped, 0);
  assert.equal(p.snd.buffered.snd, 0, "all acknowledged");
  assert.ok(p.rcv.stats.rttUs < 100_000, "RTT measured from ACKACK");
});

test("a packet lost for good is given up once its successor is due (TLPKTDROP); nothing waits after it", () => {
  const p = pair((seq) => seq === 0x7ffffff5);
  for (let i = 0; i < 50; i++) {
    p.snd.write(payload(i));
    p.step(2);
  }
  p.step(2000);
  assert.deepEqual(
    p.delivered,
    [...Array(50).keys()].filter((i) => i !== 5),
  );
  assert.equal(p.rcv.stats.packetsDropped, 1);
});

test("delivery waits for the latency; a silent peer is closed; shutdown reaches the other side", () => {
  const p = pair(() => false);
  p.snd.write(payload(1));
  p.step(50);
  assert.deepEqual(p.delivered, [], "not before timestamp + 120 ms");
  p.step(100);
  assert.deepEqual(p.delivered, [1]);
  p.snd.close("done");
  p.step(20);
  assert.deepEqual(p.closed, ["snd: done", "rcv: the peer closed the session"]);
  const q = pair(() => false);
  q.snd.write(payload(1));
  q.step(10);
  q.snd.close("gone", false);
  q.step(5100);
  assert.deepEqual(q.closed, ["snd: gone", "rcv: the peer went silent"]);
});

test("a reader NAKing the whole send buffer in every range, over and over, gets each packet a bounded number of times", () => {
  let now = 1_000_000;
  let sent = 0;
  const snd = new SrtConnection({
    isn: 0x7fffff00,
    rcvLatencyMs: 120,
    sndLatencyMs: 120,
    rcvBufferPackets: 1024,
    sndBufferPackets: 1024,
    km: undefined,
    now: () => now,
    peerSocketId: 2,
    send: (b) => {
      if (!isControl(b)) sent++;
    },
    onClose: () => {},
  });
  for (let i = 0; i < 1024; i++) snd.write(payload(i));
  sent = 0;
  // One datagram, 8000 ranges each naming the 1024 packets sent (from 0x7fffff00 across the wrap).
  const nak = Buffer.alloc(16 + 8000 * 8);
  nak.writeUInt32BE(0x80030000, 0);
  for (let r = 0; r < 8000; r++) {
    nak.writeUInt32BE((0x80000000 | 0x7fffff00) >>> 0, 16 + r * 8);
    nak.writeUInt32BE((0x7fffff00 + 1023) & 0x7fffffff, 20 + r * 8);
  }
  snd.input(nak);
  assert.equal(sent, 1024, "one NAK: each packet once, not once per range");
  snd.input(nak);
  assert.equal(sent, 1024, "the same NAK again at once: nothing resent");
  for (let k = 0; k < 100; k++) {
    now += 20_000;
    snd.input(nak);
  }
  assert.equal(sent, 16 * 1024, "at most 16 retransmissions of a packet");
  assert.equal(snd.stats.packetsRetransmitted, 16 * 1024);
});

test("a DROPREQ past everything received leaves no loss behind the delivery point (no NAKs for it for ever)", () => {
  let now = 1_000_000;
  const naks: Buffer[] = [];
  const delivered: number[] = [];
  const isn = 0x7ffffff0;
  const rcv = new SrtConnection({
    isn,
    rcvLatencyMs: 20,
    sndLatencyMs: 20,
    rcvBufferPackets: 1024,
    sndBufferPackets: 1024,
    km: undefined,
    now: () => now,
    peerSocketId: 1,
    send: (b) => {
      if (isControl(b) && (b.readUInt16BE(0) & 0x7fff) === 3) naks.push(b);
    },
    onData: (p) => delivered.push(p.readUInt32BE(0)),
    onClose: () => {},
  });
  const data = (seq: number, i: number) => {
    const b = Buffer.alloc(16 + 4);
    b.writeUInt32BE(seq & 0x7fffffff, 0);
    b.writeUInt32BE(0xc0000000, 4);
    b.writeUInt32BE(i * 1000, 8);
    b.writeUInt32BE(i, 16);
    return b;
  };
  rcv.input(data(isn, 0));
  now += 30_000;
  rcv.tick();
  assert.deepEqual(delivered, [0]);
  const drop = Buffer.alloc(24);
  drop.writeUInt32BE(0x80070000, 0);
  drop.writeUInt32BE((isn + 1) & 0x7fffffff, 16);
  drop.writeUInt32BE((isn + 100) & 0x7fffffff, 20);
  rcv.input(drop);
  rcv.input(data(isn + 101, 31));
  assert.equal(naks.length, 0, "nothing before the drop point is reported lost");
  now += 1_000_000;
  rcv.tick();
  assert.equal(naks.length, 0);
  assert.deepEqual(delivered, [0, 31]);
  assert.equal(rcv.buffered.rcv, 0);
});
