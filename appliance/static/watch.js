// Watch page player.
//  * LL-HLS by default: hls.js in low-latency mode with live catch-up (playback rate up to
//    1.2 until it is back at PART-HOLD-BACK); native HLS (Safari/iOS) where MSE is missing.
//  * "Low latency" toggle (only when the server offers WHEP): WebRTC over WHEP (draft-ietf-wish-whep).
//    Any WebRTC failure falls back to LL-HLS by itself.
//  * The page follows the broadcast: opened before it is live it waits, then switches to the
//    player (badge, LIVE indicator) when it starts; once it ended it plays the recording (the
//    VOD at /vod/{id}/index.m3u8), never a loop of the last live seconds.
// Reads its configuration from a data attribute (CSP forbids inline scripts). ``?mode=hls``,
// ``?mode=llhls`` or ``?mode=webrtc`` forces a mode (benchmarks, tests).
"use strict";
(function () {
  const root = document.getElementById("watch");
  const video = document.getElementById("player");
  const status = document.getElementById("player-status");
  const viewers = document.getElementById("viewers");
  if (!root || !video) return;
  const cfg = JSON.parse(root.dataset.config);
  const params = new URLSearchParams(window.location.search);
  const forced = params.get("mode");
  const PREF_KEY = "hearth.lowLatency";
  const setStatus = (text) => { status.textContent = text; };
  const player = { video: video, hls: null, pc: null, mode: null, whepUrl: null,
                   fallbackReason: null };
  window.hearthPlayer = player;
  let retryTimer = null;
  let whepResource = null;

  // ---- viewer counting and live-latency bound (issue 11) ----------------------------------
  // A random id for this page: sent with same-origin HLS media requests and with a beacon
  // every few seconds while playing, so the server counts this player once even when an edge
  // cache answers its media requests (the beacon is an uncacheable POST). No cookie, no URL
  // rewriting: every viewer's playlist URLs stay identical (cacheable).
  const playerId = Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0")).join("");
  player.id = playerId;
  const BEACON_MS = 5000;
  // hls.js catches up by playback rate only within targetLatency + targetduration; a join
  // that lands further behind (a stall while hls.js re-aligns) stayed there for good. Past
  // this bound the player jumps to the live sync position instead.
  const MAX_EXTRA_LATENCY = 2.5;
  const sameOrigin = (url) => new URL(url, window.location.href).origin === window.location.origin;
  function beacon() {
    // WHEP peers count server-side; a recording is not the live stream.
    if (player.mode === "webrtc" || player.mode === "vod" || video.paused) return;
    fetch("/api/streams/" + encodeURIComponent(cfg.id) + "/viewing?player=" + playerId +
          (player.mode === "llhls" ? "&mode=llhls" : ""),
          { method: "POST", keepalive: true }).catch(() => {});
  }
  function boundLatency() {
    const hls = player.hls;
    if (!hls || player.mode === "vod" || video.paused || video.readyState < 3) return;
    const latency = hls.latency, target = hls.targetLatency, live = hls.liveSyncPosition;
    if (latency > target + MAX_EXTRA_LATENCY && live && live > video.currentTime) {
      player.latencyJumps = (player.latencyJumps || 0) + 1;
      video.currentTime = live;
    }
  }
  function markPlayer(xhr, url) {
    if (sameOrigin(url)) xhr.setRequestHeader("X-Hearth-Player", playerId);
  }
  setInterval(beacon, BEACON_MS);
  setInterval(boundLatency, 1000);

  // ---- broadcast phase: waiting → live → ended (recording) ---------------------------------
  const badge = root.querySelector("h1 .badge");
  const meta = viewers ? viewers.parentElement : null;
  const apiUrl = cfg.api || "/api/streams/" + encodeURIComponent(cfg.id);
  let phase = "unknown";  // "waiting" | "live" | "ended"
  let lastViewers = 0;
  player.phase = () => phase;
  const bar = document.createElement("div");
  bar.className = "player-bar";
  const liveDot = document.createElement("span");
  liveDot.className = "live-indicator";
  liveDot.id = "live-indicator";
  liveDot.textContent = "LIVE";
  liveDot.hidden = true;
  const unmute = document.createElement("button");
  unmute.type = "button";
  unmute.id = "unmute";
  unmute.className = "unmute";
  unmute.textContent = "🔇 Tap to unmute";
  unmute.hidden = true;
  unmute.addEventListener("click", () => {
    video.muted = false;
    video.volume = Math.max(video.volume, 0.5);
    video.play().catch(() => {});
  });
  bar.append(liveDot, unmute);
  video.after(bar);
  const samePath = (url) => new URL(url, window.location.href).pathname;  // CSP: same origin

  function setBadge(text, live) {
    if (!badge) return;
    badge.textContent = text;
    badge.classList.toggle("live", live);
  }
  function updateUnmute() { unmute.hidden = !(video.muted && !video.paused); }
  function showViewers(n) {
    if (typeof n === "number") lastViewers = n;
    if (!meta) return;
    // Shown only while live, and this page is one of the viewers from the moment it has the
    // live playlist (the server counts it at its next reload): never "0 watching".
    meta.hidden = phase !== "live";
    viewers.textContent = String(phase === "live" ? Math.max(lastViewers, 1) : lastViewers);
  }
  function enterLive() {
    if (phase === "live") return;
    phase = "live";
    root.classList.add("is-live");
    liveDot.hidden = false;
    setBadge("LIVE", true);
    showViewers();
  }
  function waitForLive() {
    // A channel page starts the player only when the API says a broadcast is live: its
    // playlist URL may still hold the last broadcast's final seconds.
    stopHls();
    phase = "waiting";
    root.classList.remove("is-live");
    liveDot.hidden = true;
    setBadge("NOT LIVE YET", false);
    if (meta) meta.hidden = true;
    setStatus("Waiting for the stream…");
  }
  function enterWaiting() {
    if (phase === "unknown") phase = "waiting";
    if (meta) meta.hidden = true;
  }
  function endedMessage(vodUrl) {
    status.textContent = "";
    status.append("Ended · ");
    if (vodUrl) {
      const link = document.createElement("a");
      link.href = "#recording";
      link.id = "watch-recording";
      link.textContent = "watch the recording";
      link.addEventListener("click", (ev) => { ev.preventDefault(); startVod(vodUrl); });
      status.append(link);
    } else {
      status.append("no recording is available");
    }
  }
  async function recordingUrl(s) {
    const url = (s && s.recording_url) || cfg.vod
      || "/vod/" + encodeURIComponent(cfg.id) + "/index.m3u8";
    try {
      const res = await fetch(samePath(url), { method: "HEAD" });
      return res.ok ? samePath(url) : null;
    } catch (_e) { return null; }
  }
  async function enterEnded(s, autoplay) {
    if (phase === "ended") return;
    const wasLive = phase === "live";
    phase = "ended";
    root.classList.remove("is-live");
    liveDot.hidden = true;
    setBadge("ENDED", false);
    if (meta) meta.hidden = true;
    const vod = await recordingUrl(s);
    if (autoplay && vod) { startVod(vod); return; }
    if (!wasLive) { stopHls(); stopWhep(); }
    endedMessage(vod);
  }
  video.addEventListener("playing", updateUnmute);
  video.addEventListener("pause", updateUnmute);
  video.addEventListener("volumechange", updateUnmute);

  // ---- HLS / LL-HLS ------------------------------------------------------------------------

  function stopHls() {
    if (player.hls) { player.hls.destroy(); player.hls = null; }
  }

  function startHls() {
    stopHls();
    clearTimeout(retryTimer);
    const lowLatency = forced !== "hls";
    player.mode = lowLatency ? "llhls" : "hls";
    if (!(window.Hls && Hls.isSupported())) {
      if (video.canPlayType("application/vnd.apple.mpegurl")) {
        video.srcObject = null;
        video.src = cfg.hls;  // Safari speaks LL-HLS natively
        video.addEventListener("loadedmetadata", () => setStatus(""), { once: true });
        video.onerror = () => {
          setStatus("Waiting for the stream…");
          retryTimer = setTimeout(() => { video.src = cfg.hls; }, 2000);
        };
      } else {
        setStatus("This browser cannot play HLS.");
      }
      return;
    }
    const hls = new Hls(lowLatency ? {
      lowLatencyMode: true,
      maxLiveSyncPlaybackRate: 1.2,   // catch up after joining or a stall
      liveSyncOnStallIncrease: 0.2,
      backBufferLength: 30,
      manifestLoadingMaxRetry: 0,
      xhrSetup: markPlayer,
    } : { lowLatencyMode: false, liveSyncDurationCount: 3, manifestLoadingMaxRetry: 0,
          xhrSetup: markPlayer });
    player.hls = hls;
    video.srcObject = null;
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      setStatus("");
      enterLive();
      video.play().catch(() => setStatus("Press play to start"));
    });
    hls.on(Hls.Events.ERROR, (_evt, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) { hls.recoverMediaError(); return; }
      if (phase === "ended") return;
      if (cfg.follow === "channel") { waitForLive(); return; }  // the poll restarts it
      // Not live yet, or the publisher is reconnecting: try again shortly.
      enterWaiting();
      setStatus("Waiting for the stream…");
      stopHls();
      retryTimer = setTimeout(startHls, 2000);
    });
    hls.loadSource(cfg.hls);
    hls.attachMedia(video);
  }

  // ---- the recording (VOD) ----------------------------------------------------------------

  function startVod(url) {
    stopHls();
    stopWhep();
    clearTimeout(retryTimer);
    player.mode = "vod";
    player.vod = url;
    video.srcObject = null;
    video.controls = true;
    endedMessage(null);
    status.textContent = "Ended · watching the recording";
    if (!(window.Hls && Hls.isSupported())) {
      if (video.canPlayType("application/vnd.apple.mpegurl")) {
        video.src = url;  // Safari plays VOD HLS natively, seekable
        video.play().catch(() => {});
      }
      return;
    }
    const hls = new Hls({ lowLatencyMode: false, startPosition: 0, manifestLoadingMaxRetry: 2 });
    player.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, () => { video.play().catch(() => {}); });
    hls.on(Hls.Events.ERROR, (_evt, data) => {
      if (data.fatal && data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else if (data.fatal) setStatus("The recording could not be played.");
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  // ---- WebRTC over WHEP ----------------------------------------------------------------------

  function stopWhep() {
    if (player.pc) { player.pc.close(); player.pc = null; }
    if (whepResource) {
      fetch(whepResource, { method: "DELETE", keepalive: true }).catch(() => {});
      whepResource = null;
    }
  }

  function gatheringDone(pc, ms) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") { clearTimeout(t); resolve(); }
      });
    });
  }

  function fallBack(reason) {
    if (player.mode !== "webrtc") return;
    player.fallbackReason = reason;
    stopWhep();
    setStatus("Low latency unavailable (" + reason + "); using HLS");
    if (toggle) toggle.checked = false;
    startHls();
  }

  async function startWhep() {
    stopHls();
    clearTimeout(retryTimer);
    player.mode = "webrtc";
    setStatus("Connecting (low latency)…");
    const pc = new RTCPeerConnection({ iceServers: [] });
    player.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const media = new MediaStream();
    pc.ontrack = (ev) => {
      try { ev.receiver.jitterBufferTarget = 0; } catch (_e) { /* older browsers */ }
      media.addTrack(ev.track);
      video.srcObject = media;
      video.play().catch(() => setStatus("Press play to start"));
    };
    pc.onconnectionstatechange = () => {
      if (pc !== player.pc) return;
      if (pc.connectionState === "connected") setStatus("");
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        fallBack("connection " + pc.connectionState);
      }
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringDone(pc, 2000);
      const res = await fetch(player.whepUrl, {
        method: "POST", headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
      });
      const body = await res.text();
      if (res.status !== 201) throw new Error(body.trim() || "HTTP " + res.status);
      const location = res.headers.get("Location");
      if (location) whepResource = new URL(location, player.whepUrl).toString();
      if (pc !== player.pc) return;
      await pc.setRemoteDescription({ type: "answer", sdp: body });
      setTimeout(() => {
        if (pc === player.pc && pc.connectionState !== "connected") fallBack("timed out");
      }, 10000);
    } catch (e) {
      if (pc === player.pc) fallBack(String(e.message || e));
    }
  }

  // ---- mode selection ----------------------------------------------------------------------

  let toggle = null;

  function addToggle() {
    const label = document.createElement("label");
    label.className = "lowlatency";
    toggle = document.createElement("input");
    toggle.type = "checkbox";
    toggle.id = "low-latency";
    label.append(toggle, " Low latency (WebRTC)");
    status.after(label);
    toggle.checked = localStorage.getItem(PREF_KEY) === "1";
    toggle.addEventListener("change", () => {
      localStorage.setItem(PREF_KEY, toggle.checked ? "1" : "0");
      if (toggle.checked) startWhep(); else { stopWhep(); startHls(); }
    });
    return toggle.checked;
  }

  async function fetchStream() {
    try {
      const res = await fetch(apiUrl);
      if (!res.ok) return null;
      const data = await res.json();
      if (cfg.follow !== "channel") return data;
      // A channel page follows whichever broadcast is live, and waits (never "ended")
      // between broadcasts: its past ones are listed below the player.
      return data.live ? Object.assign({}, data.live, { status: "live" })
        : { status: "waiting", viewers: 0, whep_url: data.whep_url };
    } catch (_e) { return null; }
  }

  async function init() {
    const s = await fetchStream();
    if (s && s.status === "ended") { await enterEnded(s, true); return; }
    if (cfg.follow === "channel" && (!s || s.status !== "live")) { waitForLive(); return; }
    if (!s || s.status !== "live") enterWaiting();
    const whep = cfg.whep || (s && s.whep_url) || null;
    if (whep && window.RTCPeerConnection) {
      // Same origin as the page (CSP connect-src 'self'), whatever host the API advertised.
      const path = new URL(whep, window.location.href).pathname;
      player.whepUrl = new URL(path, window.location.href).toString();
      const wanted = addToggle();
      if (forced === "webrtc" || (wanted && !forced)) {
        toggle.checked = true;
        startWhep();
        return;
      }
    }
    startHls();
  }

  window.addEventListener("pagehide", stopWhep);
  init();

  async function refresh() {
    const s = await fetchStream();
    if (!s) return;
    if (s.status === "live" && phase === "waiting" && player.mode !== "webrtc") {
      startHls();  // went live: switch to the player now rather than at the next retry
    } else if (s.status === "ended" && phase !== "ended") {
      await enterEnded(s, phase !== "live");
    } else if (s.status === "waiting" && phase === "live" && player.mode !== "webrtc") {
      waitForLive();  // a channel page between broadcasts: wait for the next one
    }
    showViewers(s.viewers);
  }
  // Poll faster while waiting, so a page opened before the start switches within ~2 s.
  (function poll() {
    setTimeout(async () => { await refresh(); poll(); }, phase === "waiting" ? 2000 : 5000);
  })();
})();
