// Watch page player: hls.js where MSE exists, native HLS (Safari/iOS) otherwise.
// Reads its configuration from a data attribute (CSP forbids inline scripts).
"use strict";
(function () {
  const root = document.getElementById("watch");
  const video = document.getElementById("player");
  const status = document.getElementById("player-status");
  const viewers = document.getElementById("viewers");
  if (!root || !video) return;
  const cfg = JSON.parse(root.dataset.config);
  const setStatus = (text) => { status.textContent = text; };
  window.hearthPlayer = { video: video, hls: null };

  function startHls() {
    const hls = new Hls({ liveSyncDurationCount: 3, manifestLoadingMaxRetry: 0 });
    window.hearthPlayer.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      setStatus("");
      video.play().catch(() => setStatus("Press play to start"));
    });
    hls.on(Hls.Events.ERROR, (_evt, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) { hls.recoverMediaError(); return; }
      // Not live yet, or the publisher is reconnecting: try again shortly.
      setStatus("Waiting for the stream…");
      hls.destroy();
      setTimeout(startHls, 2000);
    });
    hls.loadSource(cfg.hls);
    hls.attachMedia(video);
  }

  if (window.Hls && Hls.isSupported()) {
    startHls();
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = cfg.hls;
    video.addEventListener("loadedmetadata", () => setStatus(""));
    video.addEventListener("error", () => {
      setStatus("Waiting for the stream…");
      setTimeout(() => { video.src = cfg.hls; }, 2000);
    });
  } else {
    setStatus("This browser cannot play HLS.");
  }

  async function refresh() {
    try {
      const res = await fetch("/api/streams/" + encodeURIComponent(cfg.id));
      if (res.ok) {
        const s = await res.json();
        viewers.textContent = String(s.viewers);
      }
    } catch (_e) { /* offline: keep the last figure */ }
  }
  setInterval(refresh, 10000);
})();
