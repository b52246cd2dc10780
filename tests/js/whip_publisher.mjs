// A WHIP publisher built on werift (an independent WebRTC stack in TypeScript), for the tests.
//
//   node whip_publisher.mjs URL KEY VIDEO_PORT AUDIO_PORT SECONDS
//
// Offers send-only H.264 (packetization-mode 1) and Opus, POSTs the offer to the WHIP
// endpoint URL with the key as bearer token (RFC 9725 §4.2), then forwards the RTP packets
// that arrive on the local UDP ports VIDEO_PORT and AUDIO_PORT (e.g. from
// `ffmpeg ... -f rtp rtp://127.0.0.1:VIDEO_PORT`) to the server: werift rewrites SSRC,
// payload type, sequence numbers and timestamps, protects them, answers NACKs and PLIs and
// sends RTCP sender reports. After SECONDS of media (or a line "stop" on stdin) it DELETEs
// the session resource.
// Prints one JSON line per event on stdout:
//   {"event":"answer","status":201,"location":"/whip/...","etag":"...","answer":"v=0..."}
//   {"event":"connected"}
//   {"event":"done","video":N,"audio":N,"plis":N,"deleteStatus":200}
// or {"event":"error","message":...}.
import dgram from "node:dgram";
import { createInterface } from "node:readline";

import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters } from "werift";

const [url, key, videoPort, audioPort, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || "6");
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function main() {
  const pc = new RTCPeerConnection({
    codecs: {
      video: [new RTCRtpCodecParameters({
        mimeType: "video/H264", clockRate: 90000, payloadType: 96,
        rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
        parameters: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
      })],
      audio: [new RTCRtpCodecParameters({
        mimeType: "audio/opus", clockRate: 48000, channels: 2, payloadType: 111,
      })],
    },
  });
  const video = new MediaStreamTrack({ kind: "video" });
  const audio = new MediaStreamTrack({ kind: "audio" });
  const vt = pc.addTransceiver(video, { direction: "sendonly" });
  pc.addTransceiver(audio, { direction: "sendonly" });
  let plis = 0;
  vt.sender.onPictureLossIndication?.subscribe?.(() => { plis += 1; });
  let connected = false;
  pc.connectionStateChange.subscribe((state) => {
    if (state === "connected" && !connected) {
      connected = true;
      out({ event: "connected" });
    }
  });
  await pc.setLocalDescription(await pc.createOffer());
  const deadline = Date.now() + 5000;
  while (pc.iceGatheringState !== "complete" && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${key}` },
    body: pc.localDescription.sdp,
  });
  const answer = await res.text();
  const location = res.headers.get("location");
  out({ event: "answer", status: res.status, location, etag: res.headers.get("etag"), answer });
  if (res.status !== 201) {
    await pc.close();
    return;
  }
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  const counts = { video: 0, audio: 0 };
  const sockets = [];
  for (const [port, track, kind] of [[videoPort, video, "video"], [audioPort, audio, "audio"]]) {
    const sock = dgram.createSocket("udp4");
    sock.on("message", (msg) => {
      if (!connected) return;
      counts[kind] += 1;
      track.writeRtp(msg);
    });
    await new Promise((r) => sock.bind(Number(port), "127.0.0.1", r));
    sockets.push(sock);
  }
  out({ event: "listening" });
  const start = Date.now();
  while (!connected && Date.now() - start < 20000) await new Promise((r) => setTimeout(r, 20));
  // Publish for SECONDS, or until a line "stop" arrives on stdin.
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, seconds * 1000);
    createInterface({ input: process.stdin }).on("line", (line) => {
      if (line.trim() === "stop") { clearTimeout(timer); resolve(); }
    });
  });
  const del = await fetch(new URL(location, url), {
    method: "DELETE", headers: { Authorization: `Bearer ${key}` } });
  for (const sock of sockets) sock.close();
  await pc.close();
  out({ event: "done", ...counts, plis, deleteStatus: del.status });
}

main().then(() => process.exit(0), (err) => {
  out({ event: "error", message: String(err && err.stack || err) });
  process.exit(1);
});
