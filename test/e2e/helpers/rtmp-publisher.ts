/**
 * A minimal RTMP publisher built on the server's own protocol code (chunk writer/reader, AMF0, messages): the
 * tests use it to publish enhanced-RTMP tags (H.265, Opus) that ffmpeg 5.1 cannot send. Client side of the
 * simple handshake, then connect / createStream / publish, then audio and video messages. `play` is the player
 * side: connect / createStream / play, then every audio and video message the server sends goes to `onMedia`.
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { type Amf, decodeAll } from "../../../src/media/protocols/rtmp/amf0.ts";
import { ChunkReader, ChunkWriter, type RtmpMessage } from "../../../src/media/protocols/rtmp/chunk.ts";
import { HANDSHAKE_SIZE, RTMP_VERSION } from "../../../src/media/protocols/rtmp/handshake.ts";
import * as M from "../../../src/media/protocols/rtmp/messages.ts";
import type { Tag } from "./ertmp-source.ts";

export class RtmpPublisher {
  readonly #socket: Socket;
  readonly #writer = new ChunkWriter();
  readonly #reader = new ChunkReader();
  #buf = Buffer.alloc(0);
  #handshook = false;
  #waiters: ((v: Amf[]) => boolean)[] = [];
  #streamId = 0;
  /** A player's received audio and video messages. */
  onMedia: ((m: RtmpMessage) => void) | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (d: Buffer) => this.#onData(d));
  }

  /** Connect and publish `rtmp://host:port/<app>/<name>`; resolves once the server says Publish.Start. */
  static async publish(url: string, fourCcList: string[] = []): Promise<RtmpPublisher> {
    const { p, name } = await RtmpPublisher.#open(url, fourCcList);
    p.#send(M.command(p.#streamId, "publish", 3, null, name, "live"));
    const status = await p.#reply((v) => v[0] === "onStatus");
    const info = status[3] as { code?: string };
    if (info.code !== "NetStream.Publish.Start") throw new Error(`publish refused: ${info.code}`);
    return p;
  }

  /** Connect and play `rtmp://host:port/<app>/<name>`; resolves once the server says Play.Start. */
  static async play(url: string, onMedia: (m: RtmpMessage) => void): Promise<RtmpPublisher> {
    const { p, name, search } = await RtmpPublisher.#open(url, []);
    p.onMedia = onMedia;
    p.#send(M.command(p.#streamId, "play", 3, null, name + search));
    const status = await p.#reply(
      (v) => v[0] === "onStatus" && (v[3] as { code?: string }).code !== "NetStream.Play.Reset",
    );
    const info = status[3] as { code?: string };
    if (info.code !== "NetStream.Play.Start") throw new Error(`play refused: ${info.code}`);
    return p;
  }

  /** Handshake, connect and createStream. */
  static async #open(url: string, fourCcList: string[]): Promise<{ p: RtmpPublisher; name: string; search: string }> {
    const u = new URL(url);
    const [app, name] = [u.pathname.split("/")[1] ?? "", u.pathname.split("/").slice(2).join("/")];
    const socket = connect(Number(u.port || 1935), u.hostname);
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const p = new RtmpPublisher(socket);
    const c1 = randomBytes(HANDSHAKE_SIZE);
    c1.fill(0, 0, 8);
    socket.write(Buffer.concat([Buffer.from([RTMP_VERSION]), c1]));
    await p.#until(() => p.#handshook);
    p.#send(M.setChunkSize(60_000));
    p.#writer.chunkSize = 60_000;
    const tcUrl = `rtmp://${u.host}/${app}`;
    p.#send(M.command(0, "connect", 1, { app, type: "nonprivate", tcUrl, fourCcList }));
    await p.#reply((v) => v[0] === "_result" && v[1] === 1);
    p.#send(M.command(0, "createStream", 2, null));
    const created = await p.#reply((v) => v[0] === "_result" && v[1] === 2);
    p.#streamId = Number(created[3]);
    return { p, name, search: u.search };
  }

  video(timestamp: number, payload: Buffer): boolean {
    return this.#media(M.MSG.VIDEO, M.CSID.VIDEO, timestamp, payload);
  }

  audio(timestamp: number, payload: Buffer): boolean {
    return this.#media(M.MSG.AUDIO, M.CSID.AUDIO, timestamp, payload);
  }

  close(): Promise<void> {
    return new Promise((r) => this.#socket.end(r));
  }

  /** The socket, for tests that write raw chunks after publishing (a hostile publisher). */
  get socket(): Socket {
    return this.#socket;
  }

  #media(type: number, csid: number, timestamp: number, payload: Buffer): boolean {
    return this.#send({ csid, type, streamId: this.#streamId, timestamp, payload });
  }

  #send(m: RtmpMessage): boolean {
    return this.#socket.write(this.#writer.write(m));
  }

  #onData(d: Buffer): void {
    if (!this.#handshook) {
      this.#buf = Buffer.concat([this.#buf, d]);
      if (this.#buf.length < 1 + 2 * HANDSHAKE_SIZE) return;
      this.#socket.write(this.#buf.subarray(1, 1 + HANDSHAKE_SIZE)); // C2 echoes S1
      d = this.#buf.subarray(1 + 2 * HANDSHAKE_SIZE);
      this.#handshook = true;
      this.#wake([]);
    }
    for (const m of this.#reader.push(d)) {
      if (m.type === M.MSG.COMMAND_AMF0) this.#wake(decodeAll(m.payload));
      else if (m.type === M.MSG.AUDIO || m.type === M.MSG.VIDEO) this.onMedia?.(m);
    }
  }

  #wake(v: Amf[]): void {
    this.#waiters = this.#waiters.filter((w) => !w(v));
  }

  #until(check: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      if (check()) return resolve();
      this.#waiters.push(() => {
        if (!check()) return false;
        resolve();
        return true;
      });
    });
  }

  #reply(match: (v: Amf[]) => boolean): Promise<Amf[]> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no reply from the RTMP server")), 10_000);
      this.#waiters.push((v) => {
        if (!match(v)) return false;
        clearTimeout(t);
        resolve(v);
        return true;
      });
    });
  }
}

/** Publish E-RTMP H.265 + Opus `tags` to `url` at twice real time (fills segments quickly, still a live stream). */
export async function publishTags(url: string, tags: Tag[]): Promise<RtmpPublisher> {
  const p = await RtmpPublisher.publish(url, ["hvc1", "Opus"]);
  const t0 = Date.now();
  for (const t of tags) {
    const wait = t.ts / 2 - (Date.now() - t0);
    if (wait > 5) await sleep(wait);
    if (t.kind === "video") p.video(t.ts, t.payload);
    else p.audio(t.ts, t.payload);
  }
  return p;
}
