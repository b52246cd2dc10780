// "Go live from this browser": a small WHIP client (RFC 9725) for the channel owner.
// Camera + microphone (getUserMedia) or the screen (getDisplayMedia) → one RTCPeerConnection
// with send-only H.264 (packetization-mode 1) and Opus → POST the offer to /whip/{channel}
// with the key as bearer token → the answer; Stop sends DELETE to the session resource.
// The key stays in this page's memory: it is never put in a URL or stored.
"use strict";

(function () {
  const root = document.getElementById("golive");
  if (!root) return;
  const cfg = JSON.parse(root.dataset.config);
  const form = document.getElementById("golive-form");
  const keyInput = document.getElementById("key");
  const startButton = document.getElementById("start");
  const stopButton = document.getElementById("stop");
  const statusLine = document.getElementById("golive-status");
  const preview = document.getElementById("preview");
  let session = null; // {pc, stream, resource, key}

  function say(text) { statusLine.textContent = text; }

  function h264First(transceiver) {
    // Hearth forwards H.264 without re-encoding: offer only H.264 with packetization-mode 1
    // (plus the retransmission codec), so the browser cannot pick VP8.
    if (!RTCRtpSender.getCapabilities || !transceiver.setCodecPreferences) return;
    const codecs = RTCRtpSender.getCapabilities("video").codecs;
    const h264 = codecs.filter((c) => c.mimeType.toLowerCase() === "video/h264" &&
      /packetization-mode=1/.test(c.sdpFmtpLine || ""));
    const rtx = codecs.filter((c) => c.mimeType.toLowerCase() === "video/rtx");
    if (h264.length) transceiver.setCodecPreferences([...h264, ...rtx]);
  }

  function gathered(pc) {
    // No trickle ICE (the server answers 405 to PATCH): send the offer with every candidate.
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState === "complete") {
          pc.removeEventListener("icegatheringstatechange", done);
          resolve();
        }
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000); // enough host candidates by now
    });
  }

  async function capture(source) {
    if (source === "screen") {
      const screen = await navigator.mediaDevices.getDisplayMedia(
        { video: { frameRate: 30 }, audio: true });
      return screen;
    }
    return navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
      audio: true,
    });
  }

  async function start() {
    const key = keyInput.value.trim();
    if (!key) { say("Type the channel's stream key."); return; }
    const source = form.querySelector("input[name=source]:checked").value;
    startButton.disabled = true;
    say("Asking for the " + (source === "screen" ? "screen…" : "camera and microphone…"));
    let stream;
    try {
      stream = await capture(source);
    } catch (err) {
      say("No " + source + ": " + err.message);
      startButton.disabled = false;
      return;
    }
    preview.srcObject = stream;
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    session = { pc, stream, resource: null, key };
    for (const track of stream.getTracks()) {
      const init = { direction: "sendonly", streams: [stream] };
      if (track.kind === "video") init.sendEncodings = [{ maxBitrate: 2500000 }];
      const transceiver = pc.addTransceiver(track, init);
      if (track.kind === "video") h264First(transceiver);
      track.addEventListener("ended", () => stop("The " + track.kind + " source ended."));
    }
    pc.addEventListener("connectionstatechange", () => {
      const state = pc.connectionState;
      if (state === "connected") say("Live. Viewers see you on the channel page.");
      else if (state === "failed") stop("The connection to the server failed.");
      else if (state === "disconnected") say("Connection interrupted; retrying…");
    });
    stopButton.disabled = false;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      say("Connecting…");
      const response = await fetch(cfg.whip, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", "Authorization": "Bearer " + key },
        body: pc.localDescription.sdp,
      });
      if (response.status !== 201) {
        const reason = (await response.text()).slice(0, 300);
        throw new Error(response.status + " " + (reason || response.statusText));
      }
      const location = response.headers.get("Location");
      session.resource = location ? new URL(location, location.startsWith("/") ?
        window.location.origin : cfg.whip).href : null;
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    } catch (err) {
      stop("Not live: " + err.message);
    }
  }

  function stop(message) {
    const s = session;
    session = null;
    if (s) {
      if (s.resource) {
        // RFC 9725 §4.2: DELETE on the session resource ends the publish (the broadcast
        // ends after the reconnect grace, as when OBS stops).
        fetch(s.resource, { method: "DELETE", headers: { "Authorization": "Bearer " + s.key },
          keepalive: true }).catch(() => {});
      }
      s.pc.close();
      for (const track of s.stream.getTracks()) track.stop();
    }
    preview.srcObject = null;
    startButton.disabled = false;
    stopButton.disabled = true;
    say(message || "Stopped.");
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); if (!session) start(); });
  stopButton.addEventListener("click", () => stop("Stopped."));
  window.addEventListener("pagehide", () => { if (session) stop(); });
})();
