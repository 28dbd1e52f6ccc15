// The player page's script (served as /_ami/player/player.js): plays the stream in <video> over HLS (hls.js, or
// the browser's own HLS), DASH (dash.js) or WebRTC (WHEP), chosen with the page's buttons. Reads data-* from <main>.
const main = document.querySelector("main");
const video = document.querySelector("video");
const status = document.getElementById("status");
const base = main.dataset.base;
const query = main.dataset.query ? `?${main.dataset.query}` : "";
let stop = () => {};
let current = "";

function say(text) {
  status.textContent = text;
}

function playHls() {
  // data-hls: master.m3u8 when the path has an ABR ladder (hls.js then switches renditions by bandwidth).
  const src = `${base}${main.dataset.hls || "index.m3u8"}${query}`;
  if (window.Hls?.isSupported()) {
    // data-mesh (media.mesh on): segments from other viewers first (mesh.js). Whole segments only, so LL-HLS parts
    // are not loaded, and a three-segment buffer leaves time to wait for a peer.
    const mesh = main.dataset.mesh && window.AmiMesh?.supported() ? new window.AmiMesh(main.dataset.mesh) : null;
    window.amiMesh = mesh ?? undefined;
    const hls = new window.Hls(
      mesh
        ? { lowLatencyMode: false, liveSyncDurationCount: 3, fLoader: mesh.loader(window.Hls.DefaultConfig.loader) }
        : { lowLatencyMode: true, liveSyncDurationCount: 2 },
    );
    hls.on(window.Hls.Events.ERROR, (_e, d) => {
      if (d.fatal) say(`HLS error: ${d.details}`);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    return () => {
      hls.destroy();
      mesh?.close();
    };
  }
  video.src = src;
  return () => video.removeAttribute("src");
}

function playDash() {
  const p = window.dashjs.MediaPlayer().create();
  // dash.js 5 resolves manifest refreshes against an absolute URL only (a relative one stalls live playback).
  p.initialize(video, new URL(`${base}${main.dataset.dash || "index.mpd"}${query}`, location.href).href, true);
  return () => p.reset();
}

async function playWebrtc() {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (e) => {
    if (video.srcObject !== e.streams[0]) video.srcObject = e.streams[0];
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => {
    if (pc.iceGatheringState === "complete") return r();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r());
    setTimeout(r, 2000);
  });
  const res = await fetch(`${base}whep${query}`, {
    method: "POST",
    headers: { "content-type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  if (!res.ok) throw new Error(`WHEP answered ${res.status}`);
  const session = res.headers.get("location");
  await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  return () => {
    pc.close();
    video.srcObject = null;
    if (session) fetch(new URL(session, location.href), { method: "DELETE" }).catch(() => {});
  };
}

async function start(kind) {
  stop();
  stop = () => {};
  current = kind;
  delete main.dataset.playing;
  for (const b of document.querySelectorAll("button[data-kind]"))
    b.setAttribute("aria-pressed", b.dataset.kind === kind);
  say(`Loading ${kind.toUpperCase()}…`);
  try {
    stop = kind === "dash" ? playDash() : kind === "webrtc" ? await playWebrtc() : playHls();
    // dash.js starts playback itself (autoplay); an early play() from here stops its live manifest refreshes.
    if (kind !== "dash") video.play().catch(() => say("Press play to start (the browser blocked autoplay)."));
  } catch (e) {
    say(`Could not play: ${e.message}`);
  }
}

// data-playing names the technology that is actually playing (tests and styles can wait for it).
video.addEventListener("playing", () => {
  main.dataset.playing = current;
  say(`Playing (${current.toUpperCase()})`);
});
video.addEventListener("waiting", () => say("Buffering…"));
for (const b of document.querySelectorAll("button[data-kind]"))
  b.addEventListener("click", () => start(b.dataset.kind));
start(new URLSearchParams(location.search).get("play") ?? "hls");
