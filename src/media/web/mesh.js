// The viewer mesh (served as /_ami/player/mesh.js when media.mesh is on): hls.js loads each `seg<N>.m4s` from
// another viewer of the stream over a WebRTC data channel when one has it (or is loading it) within the server's
// `waitMs`, checks it against the SHA-256 in `<dir>/mesh.json` and otherwise loads it over HTTP. Peers are met and
// SDP/ICE exchanged through the media server's WebSocket `/_ami/mesh?path=<path>` (src/media/mesh/protocol.ts);
// which segments a peer holds or is loading is said over the data channel itself. A peer whose segment fails the
// hash is reported to the server (never linked again) and dropped. Counters go to the server every 2 s.
(() => {
  /** Data channel messages of 16 KiB go through every browser's SCTP stack unfragmented by the application. */
  const CHUNK = 16 * 1024;
  /** Segments kept to serve peers (about the playlist window and a little more). */
  const KEEP = 24;
  const MAX_SEGMENT = 32 * 1024 * 1024;
  /** Keys a peer may announce that we remember (older ones forgotten first). */
  const MAX_HAVE = 256;
  const SEG = /\/seg\d+\.m4s$/;
  /** Requests a peer may make per second (segments come at about one a second per rendition): more is abuse. */
  const MAX_GETS_PER_S = 10;

  const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const trim = (m, max) => {
    for (const k of m.keys()) {
      if (m.size <= max) return;
      m.delete(k);
    }
  };

  class Peer {
    constructor(mesh, id, offer) {
      this.mesh = mesh;
      this.id = id;
      this.open = false;
      this.have = new Set();
      this.loading = new Set();
      this.pending = new Map();
      this.incoming = null;
      this.queue = Promise.resolve();
      this.gets = { second: 0, count: 0 };
      this.pc = new RTCPeerConnection({ iceServers: mesh.ice });
      this.pc.onicecandidate = (e) => e.candidate && mesh.signal(id, { candidate: e.candidate.toJSON() });
      this.pc.onconnectionstatechange = () => {
        if (this.pc.connectionState === "failed" || this.pc.connectionState === "closed") this.close();
      };
      // A peer that does not connect in time is given up (the server links us to others as peers leave).
      this.timer = setTimeout(() => !this.open && this.close(), 10_000);
      if (offer) {
        this.setup(this.pc.createDataChannel("ami-mesh", { ordered: true }));
        this.queue = this.queue.then(() => this.describe());
      } else this.pc.ondatachannel = (e) => this.setup(e.channel);
    }

    async describe() {
      await this.pc.setLocalDescription();
      this.mesh.signal(this.id, { sdp: this.pc.localDescription.toJSON() });
    }

    /** SDP and candidates in arrival order (a candidate must not overtake the description it belongs to). */
    onSignal(d) {
      this.queue = this.queue
        .then(async () => {
          if (d.sdp) {
            await this.pc.setRemoteDescription(d.sdp);
            if (d.sdp.type === "offer") await this.describe();
          } else if (d.candidate) await this.pc.addIceCandidate(d.candidate);
        })
        .catch(() => this.close());
    }

    setup(dc) {
      dc.binaryType = "arraybuffer";
      this.dc = dc;
      dc.onopen = () => {
        this.open = true;
        clearTimeout(this.timer);
        this.send({ t: "have", keys: [...this.mesh.store.keys()] });
        this.mesh.changed();
      };
      dc.onclose = () => this.close();
      dc.onmessage = (e) => this.onData(e.data);
    }

    /** False when the channel is not open or refuses more (closing, or its send buffer full). */
    send(m) {
      if (this.dc?.readyState !== "open") return false;
      try {
        this.dc.send(typeof m === "string" || m instanceof ArrayBuffer ? m : JSON.stringify(m));
        return true;
      } catch {
        return false;
      }
    }

    remember(set, key) {
      if (typeof key !== "string" || key.length > 512) return;
      set.add(key);
      trim(set, MAX_HAVE);
    }

    onData(d) {
      if (typeof d !== "string") return this.onChunk(d);
      let m;
      try {
        m = JSON.parse(d);
      } catch {
        return this.mesh.ban(this);
      }
      if (m?.t === "have" && Array.isArray(m.keys))
        for (const k of m.keys.slice(-MAX_HAVE)) this.remember(this.have, k);
      else if (m?.t === "add") {
        this.remember(this.have, m.key);
        this.loading.delete(m.key);
      } else if (m?.t === "loading") this.remember(this.loading, m.key);
      else if (m?.t === "get") {
        // Each answer costs our upload: a peer asking faster than segments are made is dropped.
        const second = Math.floor(performance.now() / 1000);
        if (this.gets.second !== second) this.gets = { second, count: 0 };
        if (++this.gets.count > MAX_GETS_PER_S) return this.mesh.ban(this);
        this.mesh.serve(this, m.key);
      } else if (m?.t === "miss") this.finish(m.key, null);
      else if (m?.t === "data" && !this.incoming && Number.isInteger(m.size) && m.size > 0 && m.size <= MAX_SEGMENT)
        this.incoming = { key: m.key, size: m.size, buf: new Uint8Array(m.size), got: 0 };
      else return this.mesh.ban(this);
      this.mesh.changed();
    }

    onChunk(ab) {
      const inc = this.incoming;
      if (!inc || inc.got + ab.byteLength > inc.size) return this.mesh.ban(this);
      inc.buf.set(new Uint8Array(ab), inc.got);
      inc.got += ab.byteLength;
      if (inc.got < inc.size) return;
      this.incoming = null;
      this.finish(inc.key, inc.buf.buffer);
    }

    /** The segment's bytes from this peer, or null (it has not got it any more, left, or took longer than `ms`). */
    request(key, ms) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => this.finish(key, null), ms);
        this.pending.set(key, { resolve, timer });
        this.send({ t: "get", key });
      });
    }

    finish(key, buf) {
      const p = this.pending.get(key);
      if (!p) return;
      this.pending.delete(key);
      clearTimeout(p.timer);
      if (!buf) this.have.delete(key);
      p.resolve(buf);
    }

    close() {
      if (this.closed) return;
      this.closed = true;
      this.open = false;
      clearTimeout(this.timer);
      for (const key of [...this.pending.keys()]) this.finish(key, null);
      this.pc.close();
      if (this.mesh.peers.get(this.id) === this) this.mesh.peers.delete(this.id);
      this.mesh.changed();
    }
  }

  class Mesh {
    static supported() {
      return typeof RTCPeerConnection === "function" && !!globalThis.crypto?.subtle && typeof WebSocket === "function";
    }

    constructor(path) {
      this.path = path;
      this.id = null;
      this.ice = [];
      this.waitMs = 1000;
      this.peers = new Map();
      this.store = new Map();
      this.hashes = new Map();
      this.manifests = new Map();
      this.waiters = new Set();
      this.closed = false;
      /** Bytes of segments from peers and over HTTP (with mesh.json), peer segments refused by hash, bytes served. */
      this.stats = { peerBytes: 0, httpBytes: 0, rejected: 0, servedBytes: 0, peerSegments: 0, httpSegments: 0 };
      this.reported = "";
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      this.ws = new WebSocket(`${proto}//${location.host}/_ami/mesh?path=${encodeURIComponent(path)}`);
      this.ws.onmessage = (e) => this.onSignal(e.data);
      this.ws.onclose = () => this.changed();
      this.timer = setInterval(() => this.report(), 2000);
    }

    onSignal(text) {
      let m;
      try {
        m = JSON.parse(text);
      } catch {
        return;
      }
      if (m.t === "welcome") Object.assign(this, { id: m.id, ice: m.ice ?? [], waitMs: m.waitMs ?? 1000 });
      else if (m.t === "peer" && !this.peers.has(m.id)) this.peers.set(m.id, new Peer(this, m.id, m.offer));
      else if (m.t === "signal") this.peers.get(m.from)?.onSignal(m.data);
      else if (m.t === "gone") this.peers.get(m.id)?.close();
      this.changed();
    }

    signal(to, data) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ t: "signal", to, data }));
    }

    report() {
      const { peerBytes: peer, httpBytes: http, rejected } = this.stats;
      const m = JSON.stringify({ t: "stats", peer, http, rejected });
      if (m !== this.reported && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(m);
        this.reported = m;
      }
    }

    changed() {
      for (const w of [...this.waiters]) w();
    }

    wait(ms) {
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, ms);
        this.waiters.add(done);
      });
    }

    broadcast(m) {
      for (const p of this.peers.values()) if (p.open) p.send(m);
    }

    /** What we send a peer that asks for `key` (tests replace it to play a peer that lies). */
    serveBytes(key) {
      return this.store.get(key);
    }

    serve(peer, key) {
      const bytes = this.serveBytes(key);
      // A channel already holding 8 MiB is not given more (the asker falls back to HTTP).
      if (!bytes || peer.dc.bufferedAmount > 8 * 1024 * 1024) return peer.send({ t: "miss", key });
      if (!peer.send({ t: "data", key, size: bytes.byteLength })) return;
      for (let o = 0; o < bytes.byteLength; o += CHUNK)
        // A channel that fails half-way is closing: the asker's request times out or ends with the channel.
        if (!peer.send(bytes.slice(o, o + CHUNK))) return;
      this.stats.servedBytes += bytes.byteLength;
    }

    ban(peer) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ t: "bad", id: peer.id }));
      peer.close();
    }

    keep(key, data) {
      this.store.delete(key);
      this.store.set(key, data);
      trim(this.store, KEEP);
      this.broadcast({ t: "add", key });
    }

    /** The server's hashes of the segments listed next to `key` (one request at a time per directory). */
    async hashOf(key) {
      const dir = key.slice(0, key.lastIndexOf("/") + 1);
      if (!this.hashes.has(key)) {
        let p = this.manifests.get(dir);
        if (!p) {
          p = fetch(`${dir}mesh.json`)
            .then(async (r) => {
              const text = r.ok ? await r.text() : "{}";
              this.stats.httpBytes += text.length;
              for (const [msn, h] of Object.entries(JSON.parse(text).segments ?? {}))
                this.hashes.set(`${dir}seg${msn}.m4s`, h);
              trim(this.hashes, 4 * MAX_HAVE);
            })
            .catch(() => {})
            .finally(() => this.manifests.delete(dir));
          this.manifests.set(dir, p);
        }
        await p;
      }
      return this.hashes.get(key);
    }

    /** "ok", "bad" (the bytes are not what the server published) or "unknown" (no hash to compare with). */
    async verify(key, buf) {
      const want = await this.hashOf(key);
      if (!want) return "unknown";
      return hex(await crypto.subtle.digest("SHA-256", buf)) === want ? "ok" : "bad";
    }

    /** The segment from a peer, or null when none has it within waitMs (then HTTP). */
    async fromPeers(key) {
      const deadline = performance.now() + this.waitMs;
      const tried = new Set();
      let jittered = false;
      for (;;) {
        if (this.closed) return null;
        const holders = [...this.peers.values()].filter((p) => p.open && p.have.has(key) && !tried.has(p));
        const left = deadline - performance.now();
        if (holders.length > 0) {
          const p = holders[Math.floor(Math.random() * holders.length)];
          tried.add(p);
          const buf = await p.request(key, Math.max(left, 0) + 1000);
          if (!buf) continue;
          const v = await this.verify(key, buf);
          if (v === "ok") {
            this.stats.peerBytes += buf.byteLength;
            this.stats.peerSegments++;
            this.keep(key, buf);
            return buf;
          }
          if (v === "bad") {
            this.stats.rejected++;
            this.ban(p);
          }
          continue;
        }
        if (left <= 0) return null;
        // Worth waiting for: a peer loading it, a peer still connecting, or the signalling not answered yet.
        const hope =
          (this.ws.readyState === WebSocket.CONNECTING && !this.id) ||
          [...this.peers.values()].some((p) => !tried.has(p) && (!p.open || p.loading.has(key)));
        if (!hope) {
          if (jittered) return null;
          // Viewers at the same live edge ask at about the same time: a short random pause lets one go first.
          jittered = true;
          await this.wait(Math.random() * 150);
          continue;
        }
        await this.wait(left);
      }
    }

    /** hls.js's fragment loader (`fLoader`): `seg<N>.m4s` from peers first, everything else (and misses) over HTTP. */
    loader(Base) {
      const mesh = this;
      return class MeshLoader {
        constructor(config) {
          this.inner = new Base(config);
          this.stats = this.inner.stats;
          this.context = null;
          this.gone = false;
          this.waiting = false;
        }

        load(context, config, callbacks) {
          this.context = context;
          const key = mesh.keyOf(context);
          const http = () => {
            this.waiting = false;
            if (this.gone) return;
            if (key) mesh.broadcast({ t: "loading", key });
            this.inner.load(context, config, {
              ...callbacks,
              onSuccess: (res, stats, ctx, details) => {
                mesh.fromHttp(key, res.data);
                callbacks.onSuccess(res, stats, ctx, details);
              },
            });
          };
          if (!key || mesh.closed) return http();
          this.waiting = true;
          this.callbacks = callbacks;
          mesh.fromPeers(key).then((buf) => {
            if (this.gone) return;
            if (!buf) return http();
            this.waiting = false;
            const s = this.stats;
            const now = performance.now();
            s.loading.start = s.loading.first = now - 1;
            s.loading.end = now;
            s.loaded = s.total = buf.byteLength;
            // hls.js may hand the data to its worker (transferred): it gets a copy, the mesh keeps the original.
            callbacks.onSuccess({ url: context.url, data: buf.slice(0) }, s, context, null);
          }, http);
        }

        abort() {
          this.gone = true;
          if (this.waiting) {
            this.stats.aborted = true;
            this.callbacks?.onAbort?.(this.stats, this.context, null);
          } else this.inner.abort();
        }

        destroy() {
          this.gone = true;
          this.inner.destroy();
        }

        getCacheAge() {
          return this.inner.getCacheAge?.() ?? null;
        }

        getResponseHeader(name) {
          return this.inner.getResponseHeader?.(name) ?? null;
        }
      };
    }

    /** A whole same-origin `seg<N>.m4s` (no byte range, no query) is shared; anything else is not. */
    keyOf(context) {
      if (context.rangeStart || context.rangeEnd) return null;
      const u = new URL(context.url, location.href);
      return u.origin === location.origin && !u.search && SEG.test(u.pathname) ? u.pathname : null;
    }

    fromHttp(key, data) {
      const n = data?.byteLength ?? 0;
      this.stats.httpBytes += n;
      if (!key || n === 0) return;
      this.stats.httpSegments++;
      // Copied before hls.js transfers the buffer to its worker.
      this.keep(key, data.slice(0));
    }

    close() {
      this.closed = true;
      clearInterval(this.timer);
      this.report();
      for (const p of [...this.peers.values()]) p.close();
      this.ws.close();
      this.changed();
    }
  }

  window.AmiMesh = Mesh;
})();
