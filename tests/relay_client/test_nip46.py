"""NIP-46: the codec (URIs, messages, sealing) and the client against a nostr-tools bunker
(tests/nip46_bunker.js) over a real relay, including the bunker being down and coming back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_client.event import NostrEvent, UnsignedEvent
from relay_client.live import build_live_event
from relay_client.nip46 import (
    BunkerURI,
    Nip46Error,
    Nip46Signer,
    NostrConnectURI,
    Request,
    Response,
    SignerRefused,
    SignerUnavailable,
    open_message,
    parse_message,
    seal,
)
from relay_client.pool import PoolConfig
from relay_client.signing import PrivateKeySigner
from tests.nostr_fixtures import Bunker, nostr_tools_dir  # noqa: F401
from tests.relay_client.conftest import RelayProcess

USER_SK = "b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfef"
BUNKER_SK = "c90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b14e5c7"
PK = "ab" * 32


def test_bunker_uri_round_trip_and_redaction() -> None:
    uri = f"bunker://{PK}?relay=wss%3A%2F%2Fr.example&relay=ws://b:7&secret=s3cret"
    b = BunkerURI.parse(uri)
    assert b == BunkerURI(PK, ("wss://r.example", "ws://b:7"), "s3cret")
    assert BunkerURI.parse(b.to_uri()) == b
    assert "s3cret" not in b.redacted()


@pytest.mark.parametrize("bad", [
    "", "bunker://", f"bunker://{PK}", f"bunker://{PK.upper()}?relay=wss://r",
    f"bunker://{PK}?relay=https://r", f"nostrconnect://{PK}?relay=wss://r",
    "bunker://" + "a" * 5000, f"bunker://{PK}?" + "&".join([f"relay=wss://r{i}"
                                                           for i in range(40)]),
])
def test_bunker_uri_rejects(bad: str) -> None:
    with pytest.raises(Nip46Error):
        BunkerURI.parse(bad)


def test_nostrconnect_uri_needs_a_secret() -> None:
    uri = NostrConnectURI(PK, ("wss://r",), "abc", name="Hearth").to_uri()
    assert NostrConnectURI.parse(uri).secret == "abc"
    with pytest.raises(Nip46Error):
        NostrConnectURI.parse(f"nostrconnect://{PK}?relay=wss://r")


def test_messages() -> None:
    assert parse_message('{"id":"1","method":"ping","params":[]}') == Request("1", "ping", ())
    assert parse_message('{"id":"1","result":"pong"}') == Response("1", "pong")
    assert parse_message('{"id":"1","result":"auth_url","error":"https://x"}').error
    for bad in ('[]', '{"id":1}', '{"id":"1","method":"x","params":[1]}', '{"id":""}',
                '{"id":"1","result":5}', "{" * 100_000, '{"id":"' + "x" * 65 + '"}'):
        with pytest.raises(Nip46Error):
            parse_message(bad)


def test_seal_and_open() -> None:
    a, b = PrivateKeySigner.generate(), PrivateKeySigner.generate()
    ev = seal(Request("7", "ping", ()), a, b.public_key)
    assert ev.kind == 24133 and ev.tags == (("p", b.public_key),) and ev.verify()
    assert open_message(ev, b) == Request("7", "ping", ())
    with pytest.raises(Nip46Error):
        open_message(ev, PrivateKeySigner.generate())  # not addressed to that key


_text = st.text(max_size=300)


@settings(max_examples=200, deadline=None)
@given(st.one_of(_text, st.builds(json.dumps, st.dictionaries(
    st.sampled_from(["id", "method", "params", "result", "error"]),
    st.one_of(st.none(), st.integers(), _text, st.lists(st.one_of(_text, st.integers()),
                                                         max_size=10)), max_size=5))))
def test_parsers_raise_only_their_error(text: str) -> None:
    for parse in (parse_message, BunkerURI.parse, NostrConnectURI.parse):
        try:
            parse(text)
        except Nip46Error:
            pass


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400))
def test_open_message_raises_only_its_error(content: str) -> None:
    me, other = PrivateKeySigner(bytes.fromhex(USER_SK)), PrivateKeySigner(bytes.fromhex(BUNKER_SK))
    try:
        ev = other.sign_event(UnsignedEvent(kind=24133, content=content,
                                            tags=(("p", me.public_key),), created_at=1))
    except Exception:
        return
    try:
        open_message(ev, me)
    except Nip46Error:
        pass


# -- against a nostr-tools bunker on a real relay ------------------------------------------

FAST = PoolConfig(backoff_initial=0.2, backoff_max=1.0, publish_timeout=3.0)


def _bunker(tools: Path, relay: RelayProcess, **kw: object) -> Bunker:
    return Bunker(tools, relay.url, USER_SK, BUNKER_SK, **kw)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_bunker_signs_a_live_event_then_goes_down_and_comes_back(
        nostr_relay: RelayProcess, nostr_tools_dir: Path) -> None:  # noqa: F811
    bunker = _bunker(nostr_tools_dir, nostr_relay, secret="pairing-secret", refuse_kinds=(1,))
    bunker.start()
    user_pk = PrivateKeySigner(bytes.fromhex(USER_SK)).public_key
    bunker_pk = PrivateKeySigner(bytes.fromhex(BUNKER_SK)).public_key
    uri = BunkerURI(bunker_pk, (nostr_relay.url,), "pairing-secret")
    try:
        async with Nip46Signer(PrivateKeySigner.generate(), uri.relays,
                               signer_pubkey=uri.signer_pubkey, timeout=4.0,
                               pool_config=FAST) as signer:
            assert await signer.connect(uri.secret) == user_pk  # user key != bunker key
            live = build_live_event(d="s1", status="live", title="remote ☃",
                                    host_pubkey=user_pk, created_at=1_700_000_000)
            event = await signer.sign_event(live)
            assert isinstance(event, NostrEvent) and event.verify()
            assert event.pubkey == user_pk and event.tags == live.tags
            with pytest.raises(SignerRefused, match="kind not allowed"):
                await signer.sign_event(UnsignedEvent(kind=1, content="x", tags=(),
                                                      created_at=1))
            bunker.stop()
            with pytest.raises(SignerUnavailable, match="no answer"):
                await signer.sign_event(live)
            assert signer.last_error and "no answer" in signer.last_error
            bunker.start()
            again = await signer.sign_event(live)
            assert again.verify() and signer.last_error is None
    finally:
        bunker.stop()


@pytest.mark.slow
async def test_wrong_secret_is_refused(nostr_relay: RelayProcess,
                                       nostr_tools_dir: Path) -> None:  # noqa: F811
    bunker = _bunker(nostr_tools_dir, nostr_relay, secret="right")
    bunker.start()
    bunker_pk = PrivateKeySigner(bytes.fromhex(BUNKER_SK)).public_key
    try:
        async with Nip46Signer(PrivateKeySigner.generate(), (nostr_relay.url,),
                               signer_pubkey=bunker_pk, timeout=4.0,
                               pool_config=FAST) as signer:
            with pytest.raises(SignerRefused, match="invalid secret"):
                await signer.connect("wrong")
    finally:
        bunker.stop()


@pytest.mark.slow
async def test_nostrconnect_flow(nostr_relay: RelayProcess,
                                 nostr_tools_dir: Path) -> None:  # noqa: F811
    user_pk = PrivateKeySigner(bytes.fromhex(USER_SK)).public_key
    bunker = _bunker(nostr_tools_dir, nostr_relay)
    async with Nip46Signer(PrivateKeySigner.generate(), (nostr_relay.url,), timeout=4.0,
                           pool_config=FAST) as signer:
        uri = signer.nostrconnect_uri(name="Hearth test")
        await signer._pool.wait_connected(timeout=5)
        try:
            bunker.start(nostrconnect=uri.to_uri())
            assert await signer.accept_nostrconnect(timeout=10) == user_pk
            assert signer.signer_pubkey == PrivateKeySigner(bytes.fromhex(BUNKER_SK)).public_key
            ev = await signer.sign_event(UnsignedEvent(kind=1311, content="hi", tags=(),
                                                       created_at=5))
            assert ev.pubkey == user_pk and ev.verify()
        finally:
            bunker.stop()
