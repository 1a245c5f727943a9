"""API keys: shown once, stored as a hash, verified, revoked; the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot import apikeys
from bot.cli import main
from bot.store.db import session_scope
from bot.store.models import ApiKey

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)


def test_only_the_hash_and_prefix_are_stored(demo_engine: Engine) -> None:
    with session_scope(demo_engine) as session:
        new = apikeys.create_key(session, "12345热线", created_by="admin", now=T0)
    prefix, secret = new.token.split(".")
    assert new.prefix == prefix and len(prefix) == 8 and len(secret) >= 43
    with session_scope(demo_engine, readonly=True) as session:
        row = session.execute(select(ApiKey)).scalar_one()
        assert row.prefix == prefix
        assert row.key_hash == apikeys.hash_key(new.token)
        assert secret not in row.key_hash and new.token not in row.key_hash
        assert (row.name, row.created_by, row.active, row.last_used_at) == (
            "12345热线",
            "admin",
            True,
            None,
        )


def test_verify_records_the_last_use(demo_engine: Engine) -> None:
    with session_scope(demo_engine) as session:
        new = apikeys.create_key(session, "a", now=T0)
    with session_scope(demo_engine) as session:
        key = apikeys.verify_key(session, new.token, now=T0 + timedelta(hours=1))
        assert key is not None and key.prefix == new.prefix
    with session_scope(demo_engine, readonly=True) as session:
        assert session.execute(select(ApiKey.last_used_at)).scalar_one() == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    "wrong", ["", None, "nodot", ".", "abc.", ".abc", "x" * 500, "deadbeef.secret"]
)
def test_wrong_keys_are_refused(demo_engine: Engine, wrong: str | None) -> None:
    with session_scope(demo_engine) as session:
        apikeys.create_key(session, "a")
        assert apikeys.verify_key(session, wrong) is None


def test_right_prefix_wrong_secret_and_revoked(demo_engine: Engine) -> None:
    with session_scope(demo_engine) as session:
        new = apikeys.create_key(session, "a")
        assert apikeys.verify_key(session, new.prefix + ".guess") is None
        assert apikeys.verify_key(session, new.token) is not None
        info = apikeys.revoke_key(session, new.prefix)
        assert info.active is False
        assert apikeys.verify_key(session, new.token) is None
        apikeys.revoke_key(session, new.prefix)  # twice is fine
        with pytest.raises(LookupError):
            apikeys.revoke_key(session, "00000000")
        with pytest.raises(ValueError):
            apikeys.create_key(session, "  ")


def test_cli_create_list_revoke(demo_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    url = str(demo_engine.url)
    assert main(["--database-url", url, "apikeys", "create", "12345热线"]) == 0
    out = capsys.readouterr().out
    token = out.strip().splitlines()[-1]
    prefix = token.split(".")[0]
    assert f"created API key {prefix}" in out
    with session_scope(demo_engine) as session:
        assert apikeys.verify_key(session, token) is not None

    assert main(["--database-url", url, "apikeys", "list"]) == 0
    listing = capsys.readouterr().out
    assert prefix in listing and "active" in listing and "12345热线" in listing
    assert token not in listing

    assert main(["--database-url", url, "apikeys", "revoke", prefix]) == 0
    assert f"revoked API key {prefix}" in capsys.readouterr().out
    assert main(["--database-url", url, "apikeys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    with session_scope(demo_engine) as session:
        assert apikeys.verify_key(session, token) is None

    assert main(["--database-url", url, "apikeys", "revoke", "nosuch"]) == 1
    assert "no API key" in capsys.readouterr().err


def test_scopes_read_and_write(demo_engine: Engine) -> None:
    with session_scope(demo_engine) as session:
        writer = apikeys.create_key(session, "w")
        reader = apikeys.create_key(session, "r", scopes=("read",))
        both = apikeys.create_key(session, "rw", scopes=("write", "read"))
    assert (writer.scopes, reader.scopes, both.scopes) == (("write",), ("read",), ("read", "write"))
    with session_scope(demo_engine) as session:
        assert apikeys.verify_key(session, writer.token) is not None
        assert apikeys.verify_key(session, writer.token, scope=apikeys.READ) is None
        assert apikeys.verify_key(session, reader.token) is None  # cannot post
        assert apikeys.verify_key(session, reader.token, scope=apikeys.READ) is not None
        assert apikeys.verify_key(session, both.token, scope=apikeys.READ) is not None
        listed = {k.name: k.scopes for k in apikeys.list_keys(session)}
    assert listed == {"w": ("write",), "r": ("read",), "rw": ("read", "write")}


@pytest.mark.parametrize("scopes", [(), ("admin",), ("read", "everything")])
def test_unknown_scopes_are_refused(demo_engine: Engine, scopes) -> None:
    with session_scope(demo_engine) as session, pytest.raises(ValueError, match="scopes"):
        apikeys.create_key(session, "x", scopes=scopes)


def test_parse_scopes_grants_only_known_words() -> None:
    assert apikeys.parse_scopes("write") == ("write",)
    assert apikeys.parse_scopes(" read , write ") == ("read", "write")
    assert apikeys.parse_scopes("readwrite,admin") == ()
    assert apikeys.parse_scopes(None) == ()


def test_cli_creates_a_read_key(demo_engine: Engine, capsys) -> None:
    url = str(demo_engine.url)
    assert main(["--database-url", url, "apikeys", "create", "区平台", "--scope", "read"]) == 0
    assert "read" in capsys.readouterr().out
    with session_scope(demo_engine, readonly=True) as session:
        assert session.execute(select(ApiKey.scopes)).scalar_one() == "read"
