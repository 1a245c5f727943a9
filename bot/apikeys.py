"""API keys of other city systems: Open311 POST ("write") and full records ("read").

A key has scopes: "write" lets a system post requests; "read" lets it read
the full Open311 record (the resident's words, room, photos, private
categories), each such read recorded (bot.access_log). Keys made before
scopes existed are write-only.

A key is shown once, when it is created: `<prefix>.<secret>`, e.g.
`3f9a0c1e.Q2x...`. The database keeps the prefix (so admins can tell keys
apart and revoke one) and the SHA-256 of the whole key, never the key itself.
The secret has 256 random bits, so a fast hash is enough: there is nothing to
guess that a slow hash would protect.

Every function works inside the caller's transaction (see
`bot.store.db.session_scope`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.models import ApiKey, aware

PREFIX_BYTES = 4  # 8 hex characters
SECRET_BYTES = 32
MAX_KEY_LENGTH = 200  # anything longer is not one of ours; do not even hash it
READ = "read"
WRITE = "write"
SCOPES = (READ, WRITE)


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: `token` is shown to the admin once, then gone."""

    id: int
    name: str
    prefix: str
    token: str
    scopes: tuple[str, ...] = (WRITE,)


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    active: bool
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    scopes: tuple[str, ...] = (WRITE,)


def parse_scopes(raw: str | None) -> tuple[str, ...]:
    """The scopes a column value grants (unknown words grant nothing)."""
    words = {w.strip() for w in (raw or "").split(",")}
    return tuple(s for s in SCOPES if s in words)


def has_scope(key: ApiKey, scope: str) -> bool:
    return scope in parse_scopes(key.scopes)


def hash_key(token: str) -> str:
    """Hex SHA-256 of the whole key (what `ApiKey.key_hash` holds)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _split(token: str) -> tuple[str, str] | None:
    prefix, dot, secret = token.partition(".")
    if not dot or not prefix or not secret:
        return None
    return prefix, secret


def create_key(
    session: Session,
    name: str,
    created_by: str | None = None,
    now: datetime | None = None,
    scopes: tuple[str, ...] | list[str] = (WRITE,),
) -> NewKey:
    """Create a key named `name` (e.g. the system that will use it) with `scopes`."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}, not {list(scopes)!r}")
    granted = tuple(s for s in SCOPES if s in scopes)
    name = (name or "").strip()
    if not name:
        raise ValueError("a key needs a name (the system that will use it)")
    if len(name) > 100:
        raise ValueError("key name longer than 100 characters")
    now = aware(now)
    while True:
        prefix = secrets.token_hex(PREFIX_BYTES)
        taken = session.execute(select(ApiKey.id).where(ApiKey.prefix == prefix)).first()
        if taken is None:
            break
    token = f"{prefix}.{secrets.token_urlsafe(SECRET_BYTES)}"
    key = ApiKey(
        name=name,
        prefix=prefix,
        key_hash=hash_key(token),
        created_by=created_by,
        active=True,
        scopes=",".join(granted),
        created_at=now,
        updated_at=now,
    )
    session.add(key)
    session.flush()
    return NewKey(id=key.id, name=key.name, prefix=prefix, token=token, scopes=granted)


def verify_key(
    session: Session,
    token: str | None,
    now: datetime | None = None,
    scope: str = WRITE,
) -> ApiKey | None:
    """The active key `token` is, if it has `scope`, or None; records when it
    was last used.

    The hash comparison is constant-time. Unknown prefix, wrong secret,
    revoked key and a key without the scope all give None (callers answer
    the same for each).
    """
    if not token or len(token) > MAX_KEY_LENGTH:
        return None
    parts = _split(token.strip())
    if parts is None:
        return None
    digest = hash_key(token.strip())
    candidates = session.execute(
        select(ApiKey).where(ApiKey.prefix == parts[0], ApiKey.active.is_(True))
    ).scalars()
    found = None
    for key in candidates:
        # Compare with every candidate (normally one) so timing tells nothing.
        if hmac.compare_digest(key.key_hash, digest):
            found = key
    if found is None or not has_scope(found, scope):
        return None
    found.last_used_at = aware(now)
    session.flush()
    return found


def list_keys(session: Session) -> list[KeyInfo]:
    keys = session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).scalars()
    return [_info(k) for k in keys]


def revoke_key(session: Session, prefix: str, now: datetime | None = None) -> KeyInfo:
    """Deactivate the key with this prefix (kept for the record, never deleted).

    Raises LookupError when no key has the prefix. Revoking twice is harmless.
    """
    key = session.execute(
        select(ApiKey).where(ApiKey.prefix == (prefix or "").strip())
    ).scalar_one_or_none()
    if key is None:
        raise LookupError(f"no API key with prefix {prefix!r}")
    if key.active:
        key.active = False
        key.updated_at = aware(now)
        session.flush()
    return _info(key)


def _info(key: ApiKey) -> KeyInfo:
    return KeyInfo(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        active=key.active,
        created_by=key.created_by,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        scopes=parse_scopes(key.scopes),
    )
