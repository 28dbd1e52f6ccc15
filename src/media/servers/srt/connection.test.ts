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
