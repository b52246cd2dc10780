"""Grant tokens, channel passwords and the access service (appliance/access): round trips,
expiry on an injected clock, scope, revocation, and hostile tokens (tampered, truncated,
oversized, random) that must fail with TokenError only."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.access import AccessService
from appliance.access.passwords import (
    PasswordError,
    check_new_password,
    hash_password,
    password_matches,
)
from appliance.access.tokens import (
    MAX_TOKEN_CHARS,
    Grant,
    TokenError,
    new_secret,
    parse_token,
    sign_token,
)
from appliance.channels import ChannelService
from appliance.config import load_config
from appliance.db import Store
from appliance.domain import ChannelFields, Visibility

SECRET = bytes(range(32))
NOW = 1_800_000_000.0
GRANT = Grant(purpose="watch", channel_id="abcdef123456", broadcast_id="0123456789ab",
              expires=int(NOW) + 3600, epoch=2)


def test_round_trip_and_scope() -> None:
    token = sign_token(SECRET, GRANT)
    assert len(token) <= MAX_TOKEN_CHARS
    assert parse_token(SECRET, token, now=NOW, purpose="watch") == GRANT
    channel_wide = Grant("watch", "abcdef123456", None, int(NOW) + 60)
    assert parse_token(SECRET, sign_token(SECRET, channel_wide), now=NOW,
                       purpose="watch").broadcast_id is None


def test_expiry_other_purpose_and_other_secret_are_refused() -> None:
    token = sign_token(SECRET, GRANT)
    with pytest.raises(TokenError, match="expired"):
        parse_token(SECRET, token, now=GRANT.expires, purpose="watch")
    parse_token(SECRET, token, now=GRANT.expires - 1, purpose="watch")
    with pytest.raises(TokenError, match="something else"):
        parse_token(SECRET, token, now=NOW, purpose="owner")
    with pytest.raises(TokenError, match="signature"):
        parse_token(new_secret(), token, now=NOW, purpose="watch")


def test_every_single_character_change_is_refused() -> None:
    token = sign_token(SECRET, GRANT)
    for i, c in enumerate(token):
        for repl in {"a", "0", "_", ".", "Z"} - {c}:
            bad = token[:i] + repl + token[i + 1:]
            with pytest.raises(TokenError):
                parse_token(SECRET, bad, now=NOW, purpose="watch")


@pytest.mark.parametrize("bad", [
    "", ".", "v1", "v2.watch.abcdef123456._.1.0.x", "v1.watch.abcdef123456._.1.0",
    "v1.watch.ABCDEF123456._.1800003600.0." + "A" * 43,
    "v1.watch.abcdef123456._.01.0." + "A" * 43,
    "v1.watch.abcdef123456._.-1.0." + "A" * 43,
    "v1.watch.abcdef123456._.1e9.0." + "A" * 43,
    "v1.watch.abcdef123456.._1.0." + "A" * 43,
    "v1.watch.abcdef123456._.1.0." + "A" * 42 + "=",
    "v1.watch.abcdef123456._.1.0." + "A" * 4000,
    "v1." * 1000, "\x00" * 100, "v1.wätch.abcdef123456._.1.0." + "A" * 43,
])
def test_malformed_tokens(bad: str) -> None:
    with pytest.raises(TokenError):
        parse_token(SECRET, bad, now=NOW, purpose="watch")


def test_truncations_and_oversized() -> None:
    token = sign_token(SECRET, GRANT)
    for n in range(len(token)):
        with pytest.raises(TokenError):
            parse_token(SECRET, token[:n], now=NOW, purpose="watch")
    with pytest.raises(TokenError, match="malformed"):
        parse_token(SECRET, token + "A" * (MAX_TOKEN_CHARS), now=NOW, purpose="watch")


def test_sign_refuses_bad_fields() -> None:
    for grant in (Grant("Watch", "abcdef123456", None, 1), Grant("watch", "x", None, 1),
                  Grant("watch", "abcdef123456", "../etc", 1),
                  Grant("watch", "abcdef123456", None, -1)):
        with pytest.raises(TokenError):
            sign_token(SECRET, grant)
    with pytest.raises(TokenError):
        sign_token(b"short", GRANT)


_TOKENISH = st.text(alphabet=string.ascii_letters + string.digits + "._-", max_size=220)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), _TOKENISH,
                 st.builds(lambda t, i, c: t[:i] + c + t[i + 1:],
                           st.just(sign_token(SECRET, GRANT)), st.integers(0, 110),
                           st.characters())))
def test_parser_raises_only_its_own_error(text: str) -> None:
    try:
        grant = parse_token(SECRET, text, now=NOW, purpose="watch")
    except TokenError:
        return
    assert grant == GRANT  # only the genuine token (a no-op "mutation") gets through


def test_passwords() -> None:
    digest = hash_password("correct horse")
    assert digest.startswith("scrypt$16384$8$1$") and "correct" not in digest
    assert password_matches("correct horse", digest)
    assert not password_matches("correct hors", digest)
    assert not password_matches("correct horse" + "x" * 2000, digest)
    assert not password_matches("correct horse", "garbage")
    assert not password_matches("correct horse", "scrypt$1$8$1$AA==$AA==")
    assert hash_password("correct horse") != digest  # salted
    for bad in ("short", "x" * 1025, "tab\there"):
        with pytest.raises(PasswordError):
            check_new_password(bad)


async def test_service_scope_expiry_revocation_and_restart(tmp_path: Path) -> None:
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(tmp_path / "h.db")
    service = ChannelService(config, store)
    await service.start()
    now = [NOW]
    try:
        channel, _ = await service.create_channel(
            ChannelFields("Secret", visibility=Visibility.PRIVATE))
        other, _ = await service.create_channel(ChannelFields("Other"))
        access = AccessService(store, clock=lambda: now[0])
        await access.start()
        token, expires = access.mint(channel.id, None, 3600)
        assert expires == int(NOW) + 3600
        assert access.check(token, channel.id, "aaaaaaaaaaaa") is not None  # channel-wide
        assert access.check(token, channel.id, None) is not None
        assert access.check(token, other.id, None) is None
        one, _ = access.mint(channel.id, "bbbbbbbbbbbb", 60)
        assert access.check(one, channel.id, "bbbbbbbbbbbb") is not None
        assert access.check(one, channel.id, "cccccccccccc") is None
        assert access.check(one, channel.id, None) is None  # not the channel as a whole
        now[0] = NOW + 61
        assert access.check(one, channel.id, "bbbbbbbbbbbb") is None  # expired
        assert access.check(token, channel.id, None) is not None
        await access.revoke_all(channel.id)
        assert access.check(token, channel.id, None) is None
        fresh, _ = access.mint(channel.id, None, 60)
        # A restart keeps the secret and the epoch: new tokens work, revoked ones stay dead.
        again = AccessService(store, clock=lambda: now[0])
        await again.start()
        assert again.check(fresh, channel.id, None) is not None
        assert again.check(token, channel.id, None) is None
        await again.set_password(channel.id, "open sesame")
        assert again.has_password(channel.id)
        assert await again.password_matches(channel.id, "open sesame")
        assert not await again.password_matches(channel.id, "open sesam")
        assert not await again.password_matches(other.id, "open sesame")
        await again.set_password(channel.id, None)
        assert not await again.password_matches(channel.id, "open sesame")
        with pytest.raises(ValueError):
            access.mint(channel.id, None, 0)
    finally:
        await service.close()
        await store.close()
