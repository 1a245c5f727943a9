"""Accounts of the web app: grid workers, community staff and admins.

Passwords are hashed with scrypt (random salt; algorithm, parameters and salt
are kept in the hash string so they can be raised later without breaking old
hashes) and compared in constant time.

A login session is a signed token, ``<worker id>.<expiry>.<signature>``: an
HMAC-SHA256 (key: settings.web_secret_key) over the worker id, the expiry and a
value derived from the worker's password hash. Changing a password therefore
ends every session of that worker; deactivating a worker ends them too (checked
whenever a token is read). A forged, altered or expired token reads as nobody.
bot.web.auth carries the token in a cookie.

Grid workers come from the grid directory; admins add community staff and
other admins, change roles and communities, set passwords and deactivate
accounts. Guard rails: an admin cannot demote or deactivate themselves, and the
last active admin cannot be demoted or deactivated (nobody could get back in).

Used by the web app (bot.web) and the command line (`python -m bot workers`);
every function on a Session works inside the caller's transaction.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.coordination import InProcessState, SharedState
from bot.store.models import Community, Grid, Worker, utcnow
from bot.tickets.display import role_label

SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD_LENGTH = 8

FIRST_ADMIN_NAME = "管理员"
FIRST_ADMIN_PHONE = "admin"

ROLES = ("grid_worker", "community_staff", "admin")
ADDABLE_ROLES = ("community_staff", "admin")  # grid workers come from the directory
MAX_NAME = 100
PHONE_RE = re.compile(r"^[0-9A-Za-z+\-_.]{3,50}$")
GENERATED_PASSWORD_BYTES = 9  # 12 characters, 72 bits

# -- passwords ---------------------------------------------------------------

# scrypt cost: 16 MiB of memory and some 50 ms per hash; raise N when hardware
# gets faster (old hashes keep working, their parameters are in the string).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """``scrypt$n=16384,r=8,p=1$<salt>$<hash>`` for `password`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=SCRYPT_DKLEN,
        maxmem=_SCRYPT_MAXMEM,
    )
    return f"scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches the hash string `stored` (constant-time compare)."""
    if not stored:
        return False
    try:
        algorithm, params, salt_text, digest_text = stored.split("$")
        if algorithm != "scrypt":
            return False
        values = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        expected = _unb64(digest_text)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt_text),
            n=n,
            r=r,
            p=p,
            dklen=len(expected),
            maxmem=_SCRYPT_MAXMEM,
        )
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    # Checked when the phone is unknown, so that "no such worker" takes as
    # long as "wrong password" and the response time does not reveal phones.
    return hash_password(secrets.token_urlsafe(16))


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"密码至少需要{MIN_PASSWORD_LENGTH}个字符")


def generate_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


# -- the logged-in worker ----------------------------------------------------


@dataclass(frozen=True)
class CurrentWorker:
    """The logged-in worker, detached from any database session."""

    id: int
    name: str
    phone: str | None
    role: str
    community_id: int | None = None
    community_name: str | None = None

    @property
    def actor(self) -> str:
        """How ticket events record this worker."""
        return f"worker:{self.id}:{self.name}"

    @property
    def role_label(self) -> str:
        return role_label(self.role)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def of(cls, worker: Worker, community_name: str | None = None) -> CurrentWorker:
        return cls(
            id=worker.id,
            name=worker.name,
            phone=worker.phone,
            role=worker.role,
            community_id=worker.community_id,
            community_name=community_name,
        )


def _community_name(session: Session, community_id: int | None) -> str | None:
    if community_id is None:
        return None
    return session.execute(
        select(Community.name).where(Community.id == community_id)
    ).scalar_one_or_none()


def authenticate(session: Session, phone: str, password: str) -> CurrentWorker | None:
    """The active worker with this phone and password, or None."""
    worker = session.execute(
        select(Worker).where(Worker.phone == phone.strip())
    ).scalar_one_or_none()
    if worker is None or not worker.active or not worker.password_hash:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, worker.password_hash):
        return None
    return CurrentWorker.of(worker, _community_name(session, worker.community_id))


def login(session: Session, phone: str, password: str) -> tuple[CurrentWorker, str] | None:
    """The worker and their login session's key (what `session_token` signs), or None."""
    worker = authenticate(session, phone, password)
    if worker is None:
        return None
    password_hash = session.execute(
        select(Worker.password_hash).where(Worker.id == worker.id)
    ).scalar_one()
    return worker, password_hash


# -- login sessions -----------------------------------------------------------


def _password_token(password_hash: str | None) -> str:
    """Changes whenever the password changes; ends old sessions."""
    return hashlib.sha256((password_hash or "").encode("utf-8")).hexdigest()[:32]


def _session_signature(secret: str, worker_id: int, expires: int, password_hash: str) -> str:
    message = f"session|{worker_id}|{expires}|{_password_token(password_hash)}"
    return _b64(hmac.new(secret.encode("utf-8"), message.encode("utf-8"), "sha256").digest())


def session_token(secret: str, worker_id: int, password_hash: str, expires_at: datetime) -> str:
    """The login session token of a worker, valid until `expires_at`."""
    expires = int(expires_at.timestamp())
    return f"{worker_id}.{expires}.{_session_signature(secret, worker_id, expires, password_hash)}"


def _parse_session_token(value: str) -> tuple[int, int, str] | None:
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2]


def worker_from_token(
    session: Session, secret: str, value: str | None, now: datetime | None = None
) -> CurrentWorker | None:
    """The worker a session token stands for, or None if forged, expired or stale."""
    parsed = _parse_session_token(value or "")
    if parsed is None:
        return None
    worker_id, expires, signature = parsed
    if expires <= (now or utcnow()).timestamp():
        return None
    worker = session.get(Worker, worker_id)
    if worker is None or not worker.active or not worker.password_hash:
        return None
    expected = _session_signature(secret, worker_id, expires, worker.password_hash)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        return None
    return CurrentWorker.of(worker, _community_name(session, worker.community_id))


# -- login throttling --------------------------------------------------------


class LoginThrottle:
    """Failed logins per phone and per client address within a sliding window.

    Counted in the shared state (bot.coordination): in this process by default,
    in Redis when REDIS_URL is set, so that several web processes behind a load
    balancer count together.
    """

    def __init__(
        self,
        per_phone: int = 5,
        per_address: int = 20,
        window: float = 15 * 60,
        clock: Callable[[], float] = time.time,
        state: SharedState | None = None,
    ) -> None:
        self.limits = {"phone": per_phone, "address": per_address}
        self.window = window
        # Wall-clock seconds: stamps written by one process are read by the others.
        self.clock = clock
        self.state = state if state is not None else InProcessState()

    @staticmethod
    def _key(kind: str, value: str) -> str:
        return f"login-failures:{kind}:{value}"

    def retry_after(self, phone: str, address: str) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        wait = 0.0
        now = self.clock()
        for kind, value in (("phone", phone), ("address", address)):
            failures = self.state.window_stamps(self._key(kind, value), since=now - self.window)
            if len(failures) >= self.limits[kind]:
                wait = max(wait, failures[-self.limits[kind]] + self.window - now)
        return max(wait, 0.0)

    def attempt(self, phone: str, address: str) -> str:
        """Count an attempt as failed before checking the password, so that
        many simultaneous guesses (on any process) cannot all slip in before
        the first one fails; `succeeded` takes it back. Returns the attempt's
        id."""
        stamp = self.clock()
        attempt_id = f"{stamp:.6f}-{secrets.token_hex(4)}"
        for kind, value in (("phone", phone), ("address", address)):
            self.state.window_add(self._key(kind, value), attempt_id, stamp, ttl=self.window)
        return attempt_id

    def succeeded(self, phone: str, address: str, attempt_id: str) -> None:
        # The phone's count starts over; the address only gets this attempt
        # back, so a correct password of one account does not reset the count
        # of an address that is guessing at others.
        self.state.window_remove(self._key("phone", phone))
        self.state.window_remove(self._key("address", address), attempt_id)


# -- accounts: first admin, passwords, admins, people ------------------------


def ensure_first_admin(session: Session, password: str | None) -> str | None:
    """Create the admin ``admin`` when there is no active admin at all.

    Uses `password` (ADMIN_PASSWORD) or generates one. Returns the generated
    password (to be shown once), "" when `password` was used, None when an
    active admin already existed.
    """
    exists = session.execute(
        select(Worker.id).where(Worker.role == "admin", Worker.active.is_(True)).limit(1)
    ).first()
    if exists is not None:
        return None
    chosen = password or generate_password()
    try:
        with session.begin_nested():
            worker = session.execute(
                select(Worker).where(Worker.phone == FIRST_ADMIN_PHONE)
            ).scalar_one_or_none()
            if worker is None:
                worker = Worker(name=FIRST_ADMIN_NAME, phone=FIRST_ADMIN_PHONE)
                session.add(worker)
            # A deactivated "admin" account comes back as the admin.
            worker.role = "admin"
            worker.active = True
            worker.community_id = None
            worker.password_hash = hash_password(chosen)
            session.flush()
    except IntegrityError:
        return None  # another web process created it at the same moment
    return "" if password else chosen


def set_password(session: Session, phone: str, password: str) -> Worker:
    """Set the password of the worker with this phone (ends the worker's sessions)."""
    worker = session.execute(select(Worker).where(Worker.phone == phone)).scalar_one_or_none()
    if worker is None:
        raise LookupError(f"没有手机号为{phone}的工作人员")
    check_new_password(password)
    reset_password(session, worker.id, password)
    return worker


@dataclass(frozen=True)
class WorkerRow:
    id: int
    name: str
    phone: str | None
    role: str
    community: str | None
    grids: tuple[str, ...]
    active: bool
    has_password: bool


def list_workers(session: Session) -> list[WorkerRow]:
    grids: dict[int, list[str]] = {}
    for worker_id, code in session.execute(
        select(Grid.worker_id, Grid.code).where(Grid.worker_id.isnot(None)).order_by(Grid.code)
    ):
        grids.setdefault(worker_id, []).append(code)
    rows = session.execute(
        select(Worker, Community.name)
        .outerjoin(Community, Worker.community_id == Community.id)
        .order_by(Worker.id)
    ).all()
    return [
        WorkerRow(
            id=w.id,
            name=w.name,
            phone=w.phone,
            role=w.role,
            community=community,
            grids=tuple(grids.get(w.id, ())),
            active=bool(w.active),
            has_password=bool(w.password_hash),
        )
        for w, community in rows
    ]


class PeopleError(ValueError):
    """The admin's input is not acceptable (a Chinese message; nothing changed)."""


def _check_password(password: str) -> None:
    try:
        check_new_password(password)
    except ValueError as error:
        raise PeopleError(str(error)) from None


def _community_id(session: Session, role: str, raw: str | int | None) -> int | None:
    """The community of a role: required for community staff, none for admins."""
    if role == "admin":
        return None
    text = str(raw or "").strip()
    if not text:
        if role == "community_staff":
            raise PeopleError("社区工作人员需要选择所属社区。")
        return None
    if not text.isdigit():
        raise PeopleError("所选社区无效。")
    community = session.get(Community, int(text))
    if community is None:
        raise PeopleError("所选社区不存在。")
    if role == "community_staff" and not community.active:
        raise PeopleError(f"{community.name}已停用，不能再分配工作人员。")
    return community.id


def communities(session: Session) -> list[tuple[int, str]]:
    return [
        (cid, name)
        for cid, name in session.execute(
            select(Community.id, Community.name)
            .where(Community.active.is_(True))
            .order_by(Community.name)
        )
    ]


@dataclass(frozen=True)
class NewPerson:
    id: int
    name: str
    phone: str
    role: str
    password: str | None  # generated: shown once


def add_person(
    session: Session,
    name: str,
    phone: str,
    role: str,
    community: str | int | None = None,
    password: str = "",
) -> NewPerson:
    """Add community staff or an admin; an empty password is generated."""
    name, phone = (name or "").strip(), (phone or "").strip()
    if not name or len(name) > MAX_NAME:
        raise PeopleError(f"请填写姓名（最多{MAX_NAME}字）。")
    if not PHONE_RE.match(phone):
        raise PeopleError("请填写手机号（登录账号；3-50位数字或字母）。")
    if role not in ADDABLE_ROLES:
        raise PeopleError("只能在此添加社区工作人员或管理员；网格员请通过网格目录导入。")
    community_id = _community_id(session, role, community)
    existing = session.execute(select(Worker).where(Worker.phone == phone)).scalar_one_or_none()
    if existing is not None:
        raise PeopleError(f"手机号{phone}已属于{existing.name}（{role_label(existing.role)}）。")
    generated = None
    if not password:
        password = generated = generate_password()
    _check_password(password)
    worker = Worker(
        name=name,
        phone=phone,
        role=role,
        community_id=community_id,
        active=True,
        password_hash=hash_password(password),
    )
    session.add(worker)
    session.flush()
    return NewPerson(worker.id, name, phone, role, generated)


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    phone: str | None
    role: str
    role_label: str
    community_id: int | None
    community: str | None
    grids: list[tuple[str, str, bool]]  # code, name, active
    active: bool
    has_password: bool

    @property
    def active_grids(self) -> list[str]:
        return [code for code, _name, active in self.grids if active]


def get_person(session: Session, worker_id: int) -> Person | None:
    worker = session.get(Worker, worker_id)
    if worker is None:
        return None
    community = session.get(Community, worker.community_id) if worker.community_id else None
    grids = [
        (code, name, bool(active))
        for code, name, active in session.execute(
            select(Grid.code, Grid.name, Grid.active)
            .where(Grid.worker_id == worker.id)
            .order_by(Grid.code)
        )
    ]
    return Person(
        id=worker.id,
        name=worker.name,
        phone=worker.phone,
        role=worker.role,
        role_label=role_label(worker.role),
        community_id=worker.community_id,
        community=community.name if community else None,
        grids=grids,
        active=bool(worker.active),
        has_password=bool(worker.password_hash),
    )


def _worker(session: Session, worker_id: int) -> Worker:
    worker = session.get(Worker, worker_id)
    if worker is None:
        raise LookupError(worker_id)
    return worker


def _other_active_admins(session: Session, worker_id: int) -> int:
    return session.execute(
        select(func.count(Worker.id)).where(
            Worker.role == "admin", Worker.active.is_(True), Worker.id != worker_id
        )
    ).scalar_one()


def change_role(
    session: Session, acting: CurrentWorker, worker_id: int, role: str, community: str | None
) -> Worker:
    """Set role and community. LookupError: no such worker; PeopleError: refused."""
    if role not in ROLES:
        raise PeopleError("请选择有效的角色。")
    worker = _worker(session, worker_id)
    if worker.role == "admin" and role != "admin":
        if worker.id == acting.id:
            raise PeopleError("不能取消自己的管理员权限（请让另一位管理员操作）。")
        if worker.active and _other_active_admins(session, worker.id) == 0:
            raise PeopleError("这是最后一位启用中的管理员，不能取消其管理员权限。")
    worker.community_id = _community_id(session, role, community)
    worker.role = role
    worker.updated_at = utcnow()
    session.flush()
    return worker


def reset_password(session: Session, worker_id: int, password: str = "") -> str | None:
    """Set a new password (ends the worker's sessions); an empty one is
    generated and returned (to be shown once)."""
    worker = _worker(session, worker_id)
    generated = None
    if not password:
        password = generated = generate_password()
    _check_password(password)
    worker.password_hash = hash_password(password)
    worker.updated_at = utcnow()
    session.flush()
    return generated


def set_active(session: Session, acting: CurrentWorker, worker_id: int, active: bool) -> Worker:
    """Deactivate (can no longer log in; sessions end) or reactivate."""
    worker = _worker(session, worker_id)
    if not active:
        if worker.id == acting.id:
            raise PeopleError("不能停用自己的账号。")
        if worker.role == "admin" and _other_active_admins(session, worker.id) == 0:
            raise PeopleError("这是最后一位启用中的管理员，不能停用。")
    worker.active = active
    worker.updated_at = utcnow()
    session.flush()
    return worker


@dataclass(frozen=True)
class PeoplePage:
    """The people page: every account, and the communities staff may belong to."""

    workers: list[WorkerRow]
    communities: list[tuple[int, str]]


def people_page(session: Session) -> PeoplePage:
    return PeoplePage(list_workers(session), communities(session))


@dataclass(frozen=True)
class PersonPage:
    person: Person | None
    communities: list[tuple[int, str]]


def person_page(session: Session, worker_id: int) -> PersonPage:
    return PersonPage(get_person(session, worker_id), communities(session))
