// A WHEP player built on werift (an independent WebRTC stack in TypeScript), for the tests.
//
//   node whep_client.mjs URL [--peers N] [--seconds S] [--profiles 640c1f,42e01f] [--no-audio]
//
// Opens N receive-only peers against the WHEP endpoint URL, offering H.264 only with the given
// profile-level-ids (each with packetization-mode=1 and level-asymmetry-allowed=1). Prints one
// JSON line per event on stdout:
//   {"event":"answer","peer":i,"status":201,"answer":"v=0...","location":"/whep/..."}
//   {"event":"flowing"}                   once every peer has received video RTP (or after
//                                         45 s); the run lasts --seconds from then
//   {"event":"done","peers":[{state, states, videoPackets, frames, framesAfterMark, gaps,
//                             missing, sps:[hex...], audioPackets}, ...]}
// gaps counts video RTP sequence discontinuities as they arrive (loss or reordering);
// missing counts sequence numbers never received (up to 1 s before the end, so NACK
// retransmissions had time to repair them).
// A line "mark" on stdin records a point in time: framesAfterMark counts from there (the test
// sends junk datagrams, then "mark", then checks that frames kept coming).
import { createInterface } from "node:readline";

import { RTCPeerConnection, RTCRtpCodecParameters } from "werift";

const args = process.argv.slice(2);
const url = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const peers = Number(opt("peers", "1"));
const seconds = Number(opt("seconds", "6"));
const profiles = opt("profiles", "640c1f").split(",");
const withAudio = !args.includes("--no-audio");

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

function nalTypes(payload) {
  // RFC 6184 §5.6-5.8: single NAL unit, STAP-A (24) or FU-A (28).
  const t = payload[0] & 0x1f;
  if (t === 24) {
    const units = [];
    let i = 1;
    while (i + 2 <= payload.length) {
      const size = payload.readUInt16BE(i);
      i += 2;
      units.push(payload.subarray(i, i + size));
      i += size;
    }
    return units;
  }
  if (t === 28) return [];
  return [payload];
}

async function openPeer(index) {
  const pc = new RTCPeerConnection({
    codecs: {
      video: profiles.map((p, i) => new RTCRtpCodecParameters({
        mimeType: "video/H264",
        clockRate: 90000,
        payloadType: 102 + 2 * i,
        rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
        parameters: `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=${p}`,
      })),
      audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 })],
    },
  });
  // No STUN: a LAN test. werift's default (Google's STUN) survives iceServers: [] in the
  // constructor (deep merge), and its gathering then waits on timeouts for seconds.
  pc.config.iceServers = [];
  const st = {
    state: "new", states: [], videoPackets: 0, frames: 0, framesAfterMark: 0, gaps: 0,
    sps: [], audioPackets: 0, status: 0, gapSeqs: [],
  };
  pc.connectionStateChange.subscribe((s) => { st.state = s; st.states.push(s); });
  pc.addTransceiver("video", { direction: "recvonly" });
  if (withAudio) pc.addTransceiver("audio", { direction: "recvonly" });
  let lastSeq = null;
  let highest = null;  // extended (unwrapped) sequence numbers, RFC 3550 A.1
  const seen = new Set();
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      if (track.kind !== "video") { st.audioPackets++; return; }
      st.videoPackets++;
      const seq = rtp.header.sequenceNumber;
      let ext = seq;
      if (highest !== null) {
        const base = highest - (highest & 0xffff);
        const cands = [base - 65536 + seq, base + seq, base + 65536 + seq];
        ext = cands.reduce((a, b) => (Math.abs(b - highest) < Math.abs(a - highest) ? b : a));
      }
      highest = highest === null ? ext : Math.max(highest, ext);
      seen.add(ext);
      st.seen = seen;
      st.lowest = st.lowest === undefined ? ext : Math.min(st.lowest, ext);
      st.highest = highest;
      if (lastSeq !== null && seq !== ((lastSeq + 1) & 0xffff)) {
        st.gaps++;
        if (st.gapSeqs.length < 5) st.gapSeqs.push([lastSeq, seq, rtp.header.payloadType]);
      }
      lastSeq = seq;
      if (rtp.header.marker) { st.frames++; if (marked) st.framesAfterMark++; }
      for (const nal of nalTypes(rtp.payload)) {
        if ((nal[0] & 0x1f) === 7 && nal.length >= 4) {
          const hex = nal.subarray(1, 4).toString("hex");
          if (!st.sps.includes(hex)) st.sps.push(hex);
        }
      }
    });
  });
  await pc.setLocalDescription(await pc.createOffer());
  // No trickle: wait for gathering so the offer carries the candidates.
  while (pc.iceGatheringState !== "complete") await new Promise((r) => setTimeout(r, 20));
  const res = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  const body = await res.text();
  st.status = res.status;
  out({ event: "answer", peer: index, status: res.status, answer: body,
        location: res.headers.get("location"), etag: res.headers.get("etag") });
  if (res.status === 201) await pc.setRemoteDescription({ type: "answer", sdp: body });
  return { pc, st };
}

let marked = false;
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "mark") marked = true;
});

const t0 = Date.now();
const all = await Promise.all(Array.from({ length: peers }, (_, i) => openPeer(i)));
// Setup (ICE, DTLS: werift drops the first ClientHello until its own ICE check succeeds, and
// aiortc backs off 1 s, 2 s, ...) may take a few seconds; --seconds counts from "flowing".
const setupDeadline = Date.now() + 45_000;
while (Date.now() < setupDeadline) {
  if (all.every(({ st }) => st.status !== 201 || st.videoPackets > 0)) break;
  await new Promise((r) => setTimeout(r, 50));
}
out({ event: "flowing", ms: Date.now() - t0 });
const deadline = Date.now() + seconds * 1000;
while (Date.now() < deadline - 1000) await new Promise((r) => setTimeout(r, 50));
// Packets sent up to now have a full second for NACK repair before the count.
for (const { st } of all) st.cutoff = st.highest;
while (Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
// Unrecovered gaps: sequence numbers never received (NACK retransmissions fill the others).
for (const { st } of all) {
  st.missing = 0;
  if (st.cutoff !== undefined) {
    for (let q = st.lowest; q <= st.cutoff; q++) if (!st.seen.has(q)) st.missing++;
  }
  delete st.seen;
}
out({ event: "done", peers: all.map(({ st }) => st) });
await Promise.all(all.map(({ pc }) => pc.close().catch(() => {})));
process.exit(0);
