// Hearth live chat (NIP-53 kind 1311) for the watch page.
// History from /api/streams/{id}/chat, live updates and sending over the same-origin
// WebSocket /api/streams/{id}/chat/ws. Messages are signed in the browser: with a NIP-07
// extension (window.nostr) when present, else with a key generated once and kept in
// localStorage, using the vendored nostr-tools bundle. All user text goes through
// textContent, never innerHTML (docs/threat-model.md §pages).
(function () {
  "use strict";
  var root = document.getElementById("watch");
  var panel = document.getElementById("chat");
  if (!root || !panel) return;
  var config;
  try { config = JSON.parse(root.getAttribute("data-config") || "{}"); } catch (e) { return; }
  var chat = config.chat;
  if (!chat || !chat.address) { panel.hidden = true; return; }

  var log = document.getElementById("chat-log");
  var statusEl = document.getElementById("chat-status");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-input");
  var identity = document.getElementById("chat-identity");
  var pinnedEl = document.getElementById("chat-pinned");
  var seen = Object.create(null);
  var texts = Object.create(null);
  var ws = null;
  var retry = 1000;
  var KEY = "hearth.chat.sk";

  function setStatus(text) { statusEl.textContent = text || ""; }

  function shortKey(pk) { return pk ? pk.slice(0, 8) + "…" : "?"; }

  function render(m) {
    if (!m || typeof m.id !== "string" || seen[m.id]) return;
    var li = document.createElement("li");
    li.dataset.id = m.id;
    li.dataset.pubkey = m.pubkey || "";
    if (m.from_operator) li.className = "operator";
    var who = document.createElement("span");
    who.className = "author";
    who.textContent = m.display_name || shortKey(m.pubkey);
    li.appendChild(who);
    if (m.zap_msats) {
      var zap = document.createElement("span");
      zap.className = "zap";
      zap.textContent = "⚡ " + Math.floor(m.zap_msats / 1000) + " sats ";
      li.appendChild(zap);
    }
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = String(m.content || "");
    li.appendChild(text);
    var reacts = document.createElement("span");
    reacts.className = "reacts";
    li.appendChild(reacts);
    if (/^[0-9a-f]{64}$/.test(m.pubkey || "")) {
      var like = document.createElement("button");
      like.type = "button";
      like.className = "react";
      like.title = "React with ❤️";
      like.textContent = "♡";
      like.addEventListener("click", function () { react("❤️", m.id, m.pubkey); });
      li.appendChild(like);
    }
    seen[m.id] = li;
    texts[m.id] = String(m.content || "");
    // Keep created_at order (relays may deliver history late).
    var ts = Number(m.created_at) || 0;
    li.dataset.ts = String(ts);
    var before = null;
    for (var n = log.lastElementChild; n; n = n.previousElementSibling) {
      if (Number(n.dataset.ts) <= ts) break;
      before = n;
    }
    var stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 30;
    log.insertBefore(li, before);
    if (stick) log.scrollTop = log.scrollHeight;
    if (m.pinned) showPinned(m.id);
  }

  function showPinned(id) {
    var t = texts[id];
    if (t === undefined) return;
    pinnedEl.textContent = "📌 " + t;
    pinnedEl.hidden = false;
  }

  function remove(id) {
    var li = seen[id];
    if (li && li.parentNode) li.parentNode.removeChild(li);
  }

  // ---- reactions (NIP-25 kind 7) ---------------------------------------------------------

  var EMOJI = ["❤️", "🔥", "👏", "😂"];
  var counts = Object.create(null);  // target ("" = the live event) -> {content: n}
  var bar = null;

  function countText(c) {
    return Object.keys(c).sort(function (a, b) { return c[b] - c[a]; }).slice(0, 5)
      .map(function (k) { return k + " " + c[k]; }).join("  ");
  }

  function showCounts(target) {
    var c = counts[target] || {};
    if (target === "") {
      if (!bar) return;
      Array.prototype.slice.call(bar.children).forEach(function (b) {
        var n = c[b.dataset.emoji] || 0;
        b.textContent = b.dataset.emoji + (n ? " " + n : "");
      });
      return;
    }
    var li = seen[target];
    var span = li && li.querySelector(".reacts");
    if (span) span.textContent = countText(c);
  }

  function addReaction(target, content, n) {
    if (typeof target !== "string" || typeof content !== "string" || !content) return;
    var c = counts[target] || (counts[target] = Object.create(null));
    c[content] = (c[content] || 0) + (n || 1);
    showCounts(target);
  }

  function loadReactions() {
    return fetch("/api/streams/" + encodeURIComponent(config.id) + "/reactions",
                 { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (all) {
        counts = Object.create(null);
        Object.keys(all || {}).forEach(function (t) {
          Object.keys(all[t]).forEach(function (k) { addReaction(t, k, Number(all[t][k]) || 0); });
        });
        showCounts("");
      }).catch(function () {});
  }

  function reactionTemplate(content, target, author) {
    var relay = (chat.relays && chat.relays[0]) || "";
    var tags = target
      ? [["e", target, relay], ["p", author], ["a", chat.address, relay], ["k", "1311"]]
      : [["a", chat.address, relay], ["p", chat.host], ["k", "30311"]];
    return { kind: 7, created_at: Math.floor(Date.now() / 1000), tags: tags, content: content };
  }

  function react(content, target, author) {
    if (!ws || ws.readyState !== WebSocket.OPEN) { setStatus("not connected yet"); return; }
    signTemplate(reactionTemplate(content, target, author)).then(function (event) {
      ws.send(JSON.stringify({ type: "event", event: event }));
    }).catch(function (err) { setStatus("could not sign: " + (err && err.message || err)); });
  }

  function showReactionBar() {
    bar = document.createElement("div");
    bar.id = "reactions";
    bar.className = "reactions";
    EMOJI.forEach(function (e) {
      var b = document.createElement("button");
      b.type = "button";
      b.dataset.emoji = e;
      b.textContent = e;
      b.title = "React to the stream";
      b.addEventListener("click", function () { react(e, null, null); });
      bar.appendChild(b);
    });
    var h = panel.querySelector("h2");
    if (h && h.parentNode) h.parentNode.insertBefore(bar, h.nextSibling);
  }

  // ---- zap goal (NIP-75) -----------------------------------------------------------------

  var goalEl = null;

  function loadGoal() {
    return fetch("/api/streams/" + encodeURIComponent(config.id) + "/goal", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(showGoal).catch(function () {});
  }

  function showGoal(g) {
    if (!g || typeof g.title !== "string" || !(g.amount_msats > 0)) return;
    if (!goalEl) {
      goalEl = document.createElement("div");
      goalEl.id = "goal";
      goalEl.className = "goal";
      var label = document.createElement("span");
      label.className = "goal-label";
      var bar = document.createElement("progress");
      goalEl.appendChild(label);
      goalEl.appendChild(bar);
      var h = panel.querySelector("h2");
      if (h && h.parentNode) h.parentNode.insertBefore(goalEl, h.nextSibling);
    }
    var done = Math.floor((Number(g.progress_msats) || 0) / 1000);
    var want = Math.floor(g.amount_msats / 1000);
    goalEl.querySelector(".goal-label").textContent =
      "⚡ " + g.title + ": " + done + " / " + want + " sats";
    var p = goalEl.querySelector("progress");
    p.max = want;
    p.value = Math.min(done, want);
  }

  function renameAuthor(pk, name) {
    // A kind 0 arrived after the messages were shown: name them now (text only).
    if (typeof pk !== "string" || typeof name !== "string" || !name) return;
    Array.prototype.slice.call(log.children).forEach(function (li) {
      if (li.dataset.pubkey !== pk) return;
      var who = li.querySelector(".author");
      if (who) who.textContent = name;
    });
  }

  function showNostrLink() {
    // NIP-53/NIP-21: let Nostr apps open this live event (zap.stream, Amethyst, …).
    if (typeof chat.naddr !== "string" || !/^naddr1[02-9ac-hj-np-z]+$/.test(chat.naddr)) return;
    var a = document.createElement("a");
    a.id = "nostr-link";
    a.className = "nostr-link";
    a.href = "nostr:" + chat.naddr;
    a.textContent = "Open in a Nostr app";
    a.title = chat.naddr;
    var h = panel.querySelector("h2");
    if (h && h.parentNode) h.parentNode.insertBefore(a, h.nextSibling);
  }

  function removeAuthor(pk) {
    Array.prototype.slice.call(log.children).forEach(function (li) {
      if (li.dataset.pubkey === pk) li.parentNode.removeChild(li);
    });
  }

  function loadHistory() {
    return fetch("/api/streams/" + encodeURIComponent(config.id) + "/chat?limit=200",
                 { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (list) { if (Array.isArray(list)) list.forEach(render); })
      .then(loadReactions)
      .then(loadGoal)
      .catch(function () {});
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/api/streams/" +
                       encodeURIComponent(config.id) + "/chat/ws");
    ws.onopen = function () { retry = 1000; panel.dataset.connected = "1"; loadHistory(); };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "message") render(msg.message);
      else if (msg.type === "hide") remove(msg.id);
      else if (msg.type === "mute") removeAuthor(msg.pubkey);
      else if (msg.type === "profile") renameAuthor(msg.pubkey, msg.display_name);
      else if (msg.type === "reaction") addReaction(msg.target || "", msg.content);
      else if (msg.type === "goal") loadGoal();
      else if (msg.type === "pinned") showPinned(msg.id);
      else if (msg.type === "ok") setStatus("");
      else if (msg.type === "error") setStatus(String(msg.error || "message refused"));
    };
    ws.onclose = function () {
      panel.dataset.connected = "";
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }

  // ---- signing ---------------------------------------------------------------------------

  function toHex(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] + 256).toString(16).slice(1);
    return out;
  }

  function fromHex(hex) {
    var out = new Uint8Array(hex.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function localKey() {
    var NT = window.NostrTools;
    if (!NT) return null;
    var hex = null;
    try { hex = localStorage.getItem(KEY); } catch (e) { /* storage disabled */ }
    if (!hex || !/^[0-9a-f]{64}$/.test(hex)) {
      hex = toHex(NT.generateSecretKey());
      try { localStorage.setItem(KEY, hex); } catch (e) { /* session-only key */ }
    }
    return fromHex(hex);
  }

  function template(content) {
    // NIP-53: a live chat message MUST carry the activity's "a" coordinate.
    return { kind: 1311, created_at: Math.floor(Date.now() / 1000),
             tags: [["a", chat.address, (chat.relays && chat.relays[0]) || ""]],
             content: content };
  }

  function signTemplate(tmpl) {
    if (window.nostr && typeof window.nostr.signEvent === "function") {
      return window.nostr.signEvent(tmpl); // NIP-07
    }
    var sk = localKey();
    if (!sk) return Promise.reject(new Error("signing library not loaded"));
    return Promise.resolve(window.NostrTools.finalizeEvent(tmpl, sk));
  }

  function sign(content) { return signTemplate(template(content)); }

  function showIdentity() {
    if (window.nostr) { identity.textContent = "Signing with your Nostr extension"; return; }
    var sk = localKey();
    if (sk) {
      identity.textContent = "Chatting as " + shortKey(window.NostrTools.getPublicKey(sk)) +
        " (key kept in this browser)";
    }
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var content = input.value.trim();
    if (!content) return;
    if (!ws || ws.readyState !== WebSocket.OPEN) { setStatus("not connected yet"); return; }
    sign(content).then(function (event) {
      ws.send(JSON.stringify({ type: "event", event: event }));
      input.value = "";
    }).catch(function (err) { setStatus("could not sign: " + (err && err.message || err)); });
  });

  showIdentity();
  showReactionBar();
  showNostrLink();
  connect();
})();
