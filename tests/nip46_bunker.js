// A NIP-46 remote signer ("bunker") for tests, built on nostr-tools (a third-party
// implementation of the crypto and event code): node --experimental-websocket nip46_bunker.js
// '{"relay": url, "user_sk": hex, "bunker_sk": hex, "secret": str, "nostrconnect": uri|null,
//   "refuse_kinds": [int]}'
// Prints "ready" once subscribed. Serves connect, get_public_key, sign_event, ping.
const { finalizeEvent, getPublicKey, verifyEvent } = require('nostr-tools/pure');
const nip44 = require('nostr-tools/nip44');

const cfg = JSON.parse(process.argv[2]);
const hex = (h) => Uint8Array.from(h.match(/../g).map((b) => parseInt(b, 16)));
const userSk = hex(cfg.user_sk);
const bunkerSk = hex(cfg.bunker_sk);
const bunkerPk = getPublicKey(bunkerSk);
const userPk = getPublicKey(userSk);
const ws = new WebSocket(cfg.relay);
let ready = false;

function send(to, body) {
  const key = nip44.getConversationKey(bunkerSk, to);
  const ev = finalizeEvent({ kind: 24133, created_at: Math.floor(Date.now() / 1000),
    tags: [['p', to]], content: nip44.encrypt(JSON.stringify(body), key) }, bunkerSk);
  ws.send(JSON.stringify(['EVENT', ev]));
}

function handle(from, req) {
  const reply = (result, error) => send(from, error ? { id: req.id, result, error } : { id: req.id, result });
  switch (req.method) {
    case 'connect':
      if (cfg.secret && req.params[1] !== cfg.secret) return reply('', 'invalid secret');
      return reply('ack');
    case 'get_public_key':
      return reply(userPk);
    case 'ping':
      return reply('pong');
    case 'sign_event': {
      const tmpl = JSON.parse(req.params[0]);
      if ((cfg.refuse_kinds || []).includes(tmpl.kind)) return reply('', 'kind not allowed');
      return reply(JSON.stringify(finalizeEvent(tmpl, userSk)));
    }
    default:
      return reply('', 'unsupported method');
  }
}

ws.onopen = () => {
  ws.send(JSON.stringify(['REQ', 'b', { kinds: [24133], '#p': [bunkerPk],
    since: Math.floor(Date.now() / 1000) - 5 }]));
  if (cfg.nostrconnect) {
    const u = new URL(cfg.nostrconnect.replace('nostrconnect://', 'http://'));
    send(u.hostname, { id: 'nc-' + Date.now(), result: u.searchParams.get('secret') });
  }
};
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg[0] === 'EOSE' && !ready) { ready = true; console.log('ready ' + bunkerPk + ' ' + userPk); }
  if (msg[0] !== 'EVENT' || !verifyEvent(msg[2])) return;
  const ev = msg[2];
  try {
    const req = JSON.parse(nip44.decrypt(ev.content, nip44.getConversationKey(bunkerSk, ev.pubkey)));
    handle(ev.pubkey, req);
  } catch (e) { console.error('bad request', e.message); }
};
ws.onclose = () => process.exit(3);
ws.onerror = (e) => { console.error('ws error', e.message); };
