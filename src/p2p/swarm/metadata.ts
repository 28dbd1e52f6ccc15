/**
 * ut_metadata (BEP 9): fetch the info dictionary of a magnet from peers in 16 KiB pieces, check it against the
 * infohash before believing it, and serve ours to others.
 */
import { createHash } from "node:crypto";
import { AmiError } from "../../core/errors.ts";
import { type Metainfo, parseInfo } from "../metainfo.ts";
import { decodeMetadata, encodeMetadata, MAX_METADATA, METADATA_PIECE } from "../wire/extension.ts";
import type { Peer } from "./peer.ts";

type Send = (ext: number, payload: Buffer) => void;

export class MetadataFetch {
  private readonly infohash: Buffer;
  private readonly expect: { v1?: Buffer; v2?: Buffer };
  private size = 0;
  private pieces: (Buffer | undefined)[] = [];
  private readonly asked = new Map<number, Peer>();
  private readonly senders = new Map<Peer, Send>();

  constructor(infohash: Buffer, expect: { v1?: Buffer; v2?: Buffer }) {
    this.infohash = infohash;
    this.expect = expect;
  }

  /** A peer's BEP 10 handshake arrived: ask it for the pieces nobody is fetching. */
  peerReady(p: Peer, send: Send): void {
    const size = p.ext?.metadataSize;
    if (!p.ext?.m.ut_metadata || !size || size > MAX_METADATA) return;
    if (!this.size) {
      this.size = size;
      this.pieces = new Array(Math.ceil(size / METADATA_PIECE)).fill(undefined);
    }
    if (size !== this.size) return;
    this.senders.set(p, send);
    this.askFrom(p);
  }

  private askFrom(p: Peer): void {
    const send = this.senders.get(p);
    const id = p.ext?.m.ut_metadata;
    if (!send || !id) return;
    for (let i = 0; i < this.pieces.length; i++) {
      if (this.pieces[i] || this.asked.has(i)) continue;
      this.asked.set(i, p);
      send(id, encodeMetadata({ kind: "request", piece: i }));
    }
  }

  forget(p: Peer): void {
    this.senders.delete(p);
    for (const [i, q] of this.asked) if (q === p) this.asked.delete(i);
    for (const q of this.senders.keys()) this.askFrom(q);
  }

  /** Handle a ut_metadata message; returns the parsed info once every piece is in and the hash matches. */
  onMessage(p: Peer, payload: Buffer, send: Send): Metainfo | undefined {
    const m = decodeMetadata(payload);
    const theirs = p.ext?.m.ut_metadata;
    if (m.kind === "request") {
      if (theirs) send(theirs, encodeMetadata({ kind: "reject", piece: m.piece }));
      return undefined;
    }
    if (this.asked.get(m.piece) !== p) return undefined;
    this.asked.delete(m.piece);
    if (m.kind === "reject") {
      this.senders.delete(p);
      for (const q of this.senders.keys()) this.askFrom(q);
      return undefined;
    }
    const last = m.piece === this.pieces.length - 1;
    const want = last ? this.size - m.piece * METADATA_PIECE : METADATA_PIECE;
    if (m.data.length !== want) throw new AmiError("AMI_INVALID_INPUT", "ut_metadata: piece of the wrong size");
    this.pieces[m.piece] = m.data;
    if (this.pieces.some((x) => !x)) return undefined;
    const info = Buffer.concat(this.pieces as Buffer[]);
    if (!this.matches(info)) {
      // Someone lied: start over (the peers that sent it cannot be told apart here).
      this.pieces = this.pieces.map(() => undefined);
      for (const q of this.senders.keys()) this.askFrom(q);
      return undefined;
    }
    // A v2-only info dict still lacks its piece layers: the torrent fetches them next (hashes.ts).
    return parseInfo(info);
  }

  private matches(info: Buffer): boolean {
    const sha1 = createHash("sha1").update(info).digest();
    const sha256 = createHash("sha256").update(info).digest();
    if (this.expect.v1) return sha1.equals(this.expect.v1);
    if (this.expect.v2) return sha256.equals(this.expect.v2);
    return sha1.equals(this.infohash) || sha256.subarray(0, 20).equals(this.infohash);
  }

  /** Answer a peer's ut_metadata request from a torrent we have. */
  static serve(meta: Metainfo | undefined, p: Peer, payload: Buffer, send: Send): undefined {
    const m = decodeMetadata(payload);
    const theirs = p.ext?.m.ut_metadata;
    if (m.kind !== "request" || !theirs) return undefined;
    const start = m.piece * METADATA_PIECE;
    if (!meta || start >= meta.infoBytes.length) {
      send(theirs, encodeMetadata({ kind: "reject", piece: m.piece }));
      return undefined;
    }
    const data = meta.infoBytes.subarray(start, start + METADATA_PIECE);
    send(theirs, encodeMetadata({ kind: "data", piece: m.piece, totalSize: meta.infoBytes.length, data }));
    return undefined;
  }
}
