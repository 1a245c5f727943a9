"""The ORM models: the grid directory, residents and tickets.

Times: every timestamp column is `UTCDateTime`. The database holds naive UTC
(`timestamp without time zone`, the same on SQLite and PostgreSQL, so ordering
and comparisons in SQL behave alike); Python always sees timezone-aware UTC
datetimes, and naive datetimes are refused on the way in so that a local time
can never be stored by mistake. Local time (Asia/Shanghai) is only used for
display and for the date in ticket numbers.

The initial Alembic migration (bot/store/migrations/versions/0001_initial.py)
is written to match these models; a test compares the two.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Session, declarative_base, relationship
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
Base = declarative_base(metadata=metadata)

TICKET_STATUSES = ("open", "accepted", "resolved", "closed", "cancelled", "escalated")
LEVELS = ("grid", "community", "street")
EVENT_TYPES = (
    "created",
    "assigned",
    "accepted",
    "note",
    "resolved",
    "cancelled",
    "escalated",
    "reopened",
    "transferred",
    "closed",
)
WORKER_ROLES = ("grid_worker", "community_staff", "admin")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(now: datetime | None) -> datetime:
    """`now`, or the current UTC time; naive datetimes are refused (ambiguous)."""
    if now is None:
        return utcnow()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
    return now


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator):
    """Aware UTC in Python, naive UTC in the database (see module docstring)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            return value.astimezone(timezone.utc)
        return value.replace(tzinfo=timezone.utc)


class TimestampMixin:
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)


class Street(TimestampMixin, Base):
    """A street office (街道): the last escalation level."""

    __tablename__ = "streets"

    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    office_name = Column(String(200), nullable=True)
    office_phone = Column(String(50), nullable=True)

    communities = relationship("Community", back_populates="street")


class Community(TimestampMixin, Base):
    """A community (社区); its residents' committee office handles community-level matters."""

    __tablename__ = "communities"

    id = Column(Integer, primary_key=True)
    street_id = Column(ForeignKey("streets.id"), nullable=True)
    name = Column(String(100), nullable=False, unique=True)
    aliases = Column(JSON, nullable=False, default=list)  # list[str], what residents type
    office_name = Column(String(200), nullable=True)
    office_phone = Column(String(50), nullable=True)
    wecom_webhook_key = Column(String(200), nullable=True)
    # False once the community disappears from the directory file.
    active = Column(Boolean, nullable=False, default=True)

    street = relationship("Street", back_populates="communities")
    grids = relationship("Grid", back_populates="community")


class Worker(TimestampMixin, Base):
    """A person who handles tickets (grid worker, community staff or admin)."""

    __tablename__ = "workers"
    __table_args__ = (CheckConstraint(_in_list("role", WORKER_ROLES), name="role"),)

    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False)
    # The directory identifies workers by phone; NULLs are allowed and distinct.
    phone = Column(String(50), nullable=True, unique=True)
    wecom_userid = Column(String(100), nullable=True)
    role = Column(String(20), nullable=False, default="grid_worker")
    community_id = Column(ForeignKey("communities.id"), nullable=True)  # community staff
    password_hash = Column(String(255), nullable=True)  # set by the web app
    active = Column(Boolean, nullable=False, default=True)


class Grid(TimestampMixin, Base):
    """A grid cell (网格) of a community, with its grid worker."""

    __tablename__ = "grids"

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False, unique=True)
    name = Column(String(100), nullable=False)
    households = Column(Integer, nullable=True)
    community_id = Column(ForeignKey("communities.id"), nullable=False, index=True)
    worker_id = Column(ForeignKey("workers.id"), nullable=True)
    wecom_webhook_key = Column(String(200), nullable=True)
    polygon = Column(JSON, nullable=True)  # [[lon, lat], ...] WGS-84
    # Grids are never deleted (tickets refer to them); a grid missing from
    # the directory file is only deactivated.
    active = Column(Boolean, nullable=False, default=True)

    community = relationship("Community", back_populates="grids")
    worker = relationship("Worker")


class GridBuilding(Base):
    """Which grid a building of a community belongs to (ranges expanded)."""

    __tablename__ = "grid_buildings"
    __table_args__ = (UniqueConstraint("community_id", "building"),)

    id = Column(Integer, primary_key=True)
    community_id = Column(ForeignKey("communities.id"), nullable=False)
    building = Column(Integer, nullable=False)
    grid_id = Column(ForeignKey("grids.id"), nullable=False, index=True)

    grid = relationship("Grid")


class Resident(TimestampMixin, Base):
    """A messenger user and the address they told us (to avoid asking twice)."""

    __tablename__ = "residents"

    id = Column(Integer, primary_key=True)
    sender_id = Column(String(128), nullable=False, unique=True)  # messenger user id
    channel = Column(String(32), nullable=True)
    community_id = Column(ForeignKey("communities.id"), nullable=True)
    building = Column(Integer, nullable=True)
    unit = Column(String(16), nullable=True)
    room = Column(String(16), nullable=True)
    grid_id = Column(ForeignKey("grids.id"), nullable=True)
    last_lat = Column(Float, nullable=True)
    last_lon = Column(Float, nullable=True)
    located_at = Column(UTCDateTime(), nullable=True)

    community = relationship("Community")
    grid = relationship("Grid")


class Counter(Base):
    """Named counters, updated inside the caller's transaction.

    `ticket:YYYYMMDD` holds the last ticket sequence of a local day;
    `directory_revision` changes whenever the grid directory changes.
    """

    __tablename__ = "counters"

    name = Column(String(64), primary_key=True)
    value = Column(BigInteger, nullable=False, default=0)


class SharedValue(Base):
    """A key of the shared state kept in the database (bot.coordination.database_engine):
    what the processes of `make run` share when there is no Redis."""

    __tablename__ = "shared_values"

    key = Column(String(255), primary_key=True)
    value = Column(Text, nullable=False)
    expires_at = Column(Float, nullable=False)  # seconds since the epoch


class SharedWindowStamp(Base):
    """A member of a window of the database's shared state, with its time."""

    __tablename__ = "shared_window_stamps"

    key = Column(String(255), primary_key=True)
    member = Column(String(255), primary_key=True)
    stamp = Column(Float, nullable=False)
    expires_at = Column(Float, nullable=False)


class Ticket(TimestampMixin, Base):
    """One matter reported by a resident, routed to a grid or a community."""

    __tablename__ = "tickets"
    __table_args__ = (
        # Exactly once: a message redelivered by the messenger finds its ticket.
        UniqueConstraint("sender_id", "message_id", name="uq_tickets_sender_message"),
        # Once per report too: its confirmation repeated by another message (after a
        # lost turn), or two turns of one report at once, find the same ticket.
        Index("uq_tickets_sender_report", "sender_id", "report_key", unique=True),
        CheckConstraint(_in_list("status", TICKET_STATUSES), name="status"),
        CheckConstraint(_in_list("level", LEVELS), name="level"),
        Index("ix_tickets_sender_status", "sender_id", "status"),
        Index("ix_tickets_grid_status_due", "grid_id", "status", "due_at"),
        Index("ix_tickets_status_due", "status", "due_at"),
        Index("ix_tickets_community_status", "community_id", "status"),
    )

    id = Column(Integer, primary_key=True)
    number = Column(String(32), nullable=False, unique=True)  # 20261127-0007
    category_code = Column(String(32), nullable=False)
    kind = Column(String(16), nullable=False)
    description = Column(Text, nullable=False, default="")
    original_text = Column(Text, nullable=True)

    community_id = Column(ForeignKey("communities.id"), nullable=True)
    building = Column(Integer, nullable=True)
    unit = Column(String(16), nullable=True)
    room = Column(String(16), nullable=True)
    address_text = Column(Text, nullable=True)
    lat = Column(Float, nullable=True)
    lon = Column(Float, nullable=True)

    grid_id = Column(ForeignKey("grids.id"), nullable=True)
    level = Column(String(16), nullable=False, default="grid")
    assignee_id = Column(ForeignKey("workers.id"), nullable=True)
    routing_reason = Column(Text, nullable=True)  # where it went and why

    status = Column(String(16), nullable=False, default="open")
    due_at = Column(UTCDateTime(), nullable=True)

    channel = Column(String(32), nullable=True)
    sender_id = Column(String(128), nullable=False)
    message_id = Column(String(128), nullable=True)
    report_key = Column(String(128), nullable=True)  # the message that started the report
    photos = Column(JSON, nullable=False, default=list)  # list[str]: media ids or URLs
    # the same fault reported by neighbours (bot.tickets.incidents)
    incident_id = Column(ForeignKey("incidents.id"), nullable=True, index=True)
    # A cleaned summary staff published for the public record (never the
    # resident's own words; see bot.tickets.publication).
    public_summary = Column(Text, nullable=True)

    # Optimistic locking: two processes changing the same ticket at once
    # (e.g. the escalation job and a worker) cannot both win.
    version = Column(Integer, nullable=False, default=1)

    community = relationship("Community")
    grid = relationship("Grid")
    assignee = relationship("Worker")
    events = relationship(
        "TicketEvent",
        back_populates="ticket",
        order_by="(TicketEvent.at, TicketEvent.id)",
    )

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<Ticket {self.number} {self.status} {self.level}>"


class Incident(TimestampMixin, Base):
    """One fault reported by several residents: reports of one category in one
    building within the category's window (bot.tickets.incidents)."""

    __tablename__ = "incidents"

    id = Column(Integer, primary_key=True)
    category_code = Column(String(32), nullable=False)
    community_id = Column(ForeignKey("communities.id"), nullable=False)
    building = Column(Integer, nullable=False)
    window_hours = Column(Integer, nullable=False)
    reason = Column(Text, nullable=False)  # why the reports were linked, as workers read it


class TicketEvent(Base):
    """Append-only history of a ticket."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        CheckConstraint(_in_list("type", EVENT_TYPES), name="type"),
        Index("ix_ticket_events_ticket", "ticket_id", "at"),
    )

    id = Column(Integer, primary_key=True)
    ticket_id = Column(ForeignKey("tickets.id"), nullable=False)
    type = Column(String(16), nullable=False)
    actor = Column(String(128), nullable=False)
    note = Column(Text, nullable=True)
    data = Column(JSON, nullable=False, default=dict)
    at = Column(UTCDateTime(), nullable=False, default=utcnow)

    ticket = relationship("Ticket", back_populates="events")

    def __repr__(self) -> str:
        return f"<TicketEvent {self.type} by {self.actor}>"


PHOTO_SOURCES = ("resident", "worker")


class TicketPhoto(Base):
    """A photo attached to a ticket: a resident's (WeChat image message) or a
    worker's (e.g. the repair done). The file lives in the photo store
    (bot.tickets.photos); the row says which file, what it is and who sent it.
    Rows are never changed: a photo attached is part of the record."""

    __tablename__ = "ticket_photos"
    __table_args__ = (
        CheckConstraint(_in_list("source", PHOTO_SOURCES), name="source"),
        # the same picture sent twice (a WeChat retry) is attached once
        UniqueConstraint("ticket_id", "sha256", name="uq_ticket_photos_ticket_sha256"),
    )

    id = Column(Integer, primary_key=True)
    ticket_id = Column(ForeignKey("tickets.id"), nullable=False, index=True)
    storage_key = Column(String(200), nullable=False)  # the file's name in the store
    content_type = Column(String(64), nullable=False)
    size_bytes = Column(Integer, nullable=False)
    sha256 = Column(String(64), nullable=False)
    source = Column(String(16), nullable=False)
    actor = Column(String(128), nullable=False)  # resident:<openid> or worker:<id>
    media_id = Column(String(200), nullable=True)  # WeChat's MediaId, when it came from there
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)

    ticket = relationship("Ticket")


class UnauditedChange(RuntimeError):
    """A ticket's status changed outside the state machine, or history was edited."""


@event.listens_for(Session, "before_flush")
def _guard_tickets(session: Session, _context: Any, _instances: Any) -> None:
    """Refuse status changes that did not go through bot.tickets.state.

    The state machine marks the ticket with the status it approved and
    appends the event; anything else (`ticket.status = "closed"` somewhere)
    fails loudly here instead of silently skipping the audit trail.
    """
    for obj in session.new:
        if isinstance(obj, Ticket) and obj.status not in (None, "open"):
            raise UnauditedChange(f"a new ticket must start open, not {obj.status!r}")
    for obj in session.dirty:
        if isinstance(obj, TicketEvent) and session.is_modified(obj):
            raise UnauditedChange("ticket events are append-only")
        if isinstance(obj, Ticket):
            history = _status_history(obj)
            if history and getattr(obj, "_approved_status", None) != obj.status:
                raise UnauditedChange(
                    f"ticket {obj.number}: status changed to {obj.status!r} "
                    "without bot.tickets.state"
                )
        if isinstance(obj, AccessRecord) and session.is_modified(obj):
            raise UnauditedChange("access records are append-only")
    for obj in session.deleted:
        if isinstance(obj, (Ticket, TicketEvent)):
            raise UnauditedChange("tickets and their events are never deleted")
        if isinstance(obj, AccessRecord):
            raise UnauditedChange("access records are never deleted")


def _status_history(ticket: Ticket) -> bool:
    return bool(inspect(ticket).attrs.status.history.has_changes())


NOTIFICATION_CHANNELS = ("wecom", "wechat")
NOTIFICATION_STATUSES = ("pending", "sent", "failed", "deferred")


class Notification(TimestampMixin, Base):
    """Outbox of messages to workers (WeCom group robot) and residents (WeChat).

    A message is written in the same transaction as the change it reports,
    then delivered and retried with backoff by the web app's sender; a failed
    push never loses the ticket and is kept with its error. `deferred`: WeChat
    no longer allows pushing to the resident, the news waits for their next
    message.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(_in_list("channel", NOTIFICATION_CHANNELS), name="channel"),
        CheckConstraint(_in_list("status", NOTIFICATION_STATUSES), name="status"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_target", "channel", "target", "status"),
    )

    id = Column(Integer, primary_key=True)
    ticket_id = Column(ForeignKey("tickets.id"), nullable=True, index=True)
    channel = Column(String(16), nullable=False)
    target = Column(String(200), nullable=False)  # robot key or the resident's OpenID
    kind = Column(String(32), nullable=False)  # new_ticket, accepted, resolved, reopened ...
    payload = Column(JSON, nullable=False, default=dict)
    status = Column(String(16), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(UTCDateTime(), nullable=True)
    last_error = Column(Text, nullable=True)
    sent_at = Column(UTCDateTime(), nullable=True)
    # How a resident's news went out: customer_service (within WeChat's 48 hours),
    # template (a template message, outside them) or next_message (with the reply to
    # their next message); None for workers' messages and news not out yet.
    delivered_via = Column(String(24), nullable=True)

    ticket = relationship("Ticket")


class ApiKey(TimestampMixin, Base):
    """Keys of other city systems posting Open311 requests (only a hash is kept)."""

    __tablename__ = "api_keys"

    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False)
    prefix = Column(String(16), nullable=False)  # shown to admins to tell keys apart
    key_hash = Column(String(128), nullable=False, unique=True)
    created_by = Column(String(100), nullable=True)
    active = Column(Boolean, nullable=False, default=True)
    last_used_at = Column(UTCDateTime(), nullable=True)
    # Comma-separated: "write" (post requests), "read" (full records); see bot.apikeys.
    scopes = Column(String(64), nullable=False, default="write", server_default="write")


class AccessRecord(Base):
    """Who opened what about residents, when (append-only; bot.access_log)."""

    __tablename__ = "access_records"
    __table_args__ = (
        Index("ix_access_records_at", "at"),
        Index("ix_access_records_actor", "actor", "at"),
        Index("ix_access_records_action", "action", "at"),
    )

    id = Column(Integer, primary_key=True)
    at = Column(UTCDateTime(), nullable=False, default=utcnow)
    actor = Column(String(128), nullable=False)  # worker:5, apikey:3f9a0c1e
    actor_name = Column(String(100), nullable=True)
    action = Column(String(32), nullable=False)  # ticket_page, csv_export ...
    target = Column(String(200), nullable=True)  # a ticket number, the filters
    detail = Column(Text, nullable=True)


REVIEW_ACTIONS = ("confirm", "relabel", "out_of_scope", "dismiss")
WORKER_CHANGES = ("category", "grid", "both")


class ReviewDecision(Base):
    """An admin's verdict on a group of near-identical resident messages.

    One row per group (`norm_hash`, see bot.review.text): confirm or relabel
    give the group's example an intent, out_of_scope the intent out_of_scope,
    dismiss nothing. Rasa's conversation log itself is never changed; the
    export (bot.review.export) turns these rows into training examples.
    """

    __tablename__ = "review_decisions"
    __table_args__ = (CheckConstraint(_in_list("action", REVIEW_ACTIONS), name="action"),)

    id = Column(Integer, primary_key=True)
    norm_hash = Column(String(64), nullable=False, unique=True)
    action = Column(String(16), nullable=False)
    intent = Column(String(64), nullable=True)  # the label; None when dismissed
    predicted_intent = Column(String(64), nullable=True)  # what the assistant thought
    text = Column(Text, nullable=False)  # the group's example, as a resident wrote it
    messages = Column(Integer, nullable=False, default=1)  # messages covered when decided
    decided_by = Column(String(128), nullable=False)
    decided_at = Column(UTCDateTime(), nullable=False, default=utcnow)


class ReviewMessage(Base):
    """A resident message of Rasa's conversation log, copied for the review inbox.

    Derived data, filled incrementally from the log's `events` table by
    bot.review.ingest (the log has no columns to sort by confidence or margin,
    nor indexes for the inbox's filters). `ticket_id` is the ticket the message
    led to; `worker_change`/`suggested_intent` say that a worker later changed
    that ticket's category or grid, and to which category's intent.
    """

    __tablename__ = "review_messages"
    __table_args__ = (
        CheckConstraint(
            f"worker_change IS NULL OR {_in_list('worker_change', WORKER_CHANGES)}",
            name="worker_change",
        ),
        # The inbox pages through unreviewed messages grouped by text: this
        # index holds every column it groups, sorts and filters by (all but
        # the text), so a page aggregates the index alone and never reads the
        # rows (~0.2 s instead of ~0.9 s for 100,000 messages on SQLite).
        Index(
            "ix_review_messages_inbox",
            "decision_id",
            "norm_hash",
            "confidence",
            "margin",
            "timestamp",
            "top_intent",
            "second_intent",
            "grid_id",
            "intent",
            "worker_change",
            "suggested_intent",
        ),
        Index("ix_review_messages_hash", "norm_hash"),
        # linking messages and tickets of a resident
        Index("ix_review_messages_sender", "sender_id", "timestamp"),
        Index("ix_review_messages_ticket", "ticket_id"),
    )

    id = Column(Integer, primary_key=True)
    event_id = Column(BigInteger, nullable=False, unique=True)  # events.id of the log
    sender_id = Column(String(255), nullable=False)
    text = Column(Text, nullable=False)
    norm_hash = Column(String(64), nullable=False)
    intent = Column(String(64), nullable=True)  # as the assistant acted (may be nlu_fallback)
    top_intent = Column(String(64), nullable=True)  # best intent other than the fallback
    second_intent = Column(String(64), nullable=True)
    confidence = Column(Float, nullable=False, default=0.0)  # of top_intent
    margin = Column(Float, nullable=False, default=0.0)  # top minus second confidence
    timestamp = Column(UTCDateTime(), nullable=False)
    grid_id = Column(ForeignKey("grids.id"), nullable=True)
    ticket_id = Column(ForeignKey("tickets.id"), nullable=True)
    worker_change = Column(String(16), nullable=True)
    suggested_intent = Column(String(64), nullable=True)
    decision_id = Column(ForeignKey("review_decisions.id"), nullable=True)


class ReviewGroup(Base):
    """Per group of near-identical messages: figures of its unreviewed messages.

    Kept by bot.review.groups whenever messages are copied, linked, decided
    or put back, so that the unfiltered inbox (what admins page through) is an
    indexed ORDER BY ... LIMIT on this table instead of an aggregate over every
    message. A group without unreviewed messages has no row. Filtered views
    aggregate review_messages directly.
    """

    __tablename__ = "review_groups"
    __table_args__ = (
        # one index per sort order of the inbox (bot.review.inbox)
        Index("ix_review_groups_confidence", "min_confidence", "min_margin", "norm_hash"),
        Index("ix_review_groups_margin", "min_margin", "min_confidence", "norm_hash"),
        Index("ix_review_groups_newest", "newest", "norm_hash"),
        Index("ix_review_groups_size", "messages", "norm_hash"),
    )

    norm_hash = Column(String(64), primary_key=True)
    messages = Column(Integer, nullable=False)
    min_confidence = Column(Float, nullable=False)
    max_confidence = Column(Float, nullable=False)
    min_margin = Column(Float, nullable=False)
    newest = Column(UTCDateTime(), nullable=False)
    rep_id = Column(Integer, nullable=False)  # the newest message
    suggested_intent = Column(String(64), nullable=True)
    changed = Column(Integer, nullable=False)  # messages whose ticket a worker changed


CONSULTATION_STATUSES = ("open", "closed")
CONSULTATION_SCOPES = ("grid", "building")
VOTE_CHANNELS = ("chat", "page")


class Consultation(TimestampMixin, Base):
    """Residents deciding together (协商议事): one question put to a grid or a building.

    Made by community staff from a proposal (a PROPOSAL ticket, `ticket_id`). Who
    may answer: residents whose known address is in the grid (`scope` grid) or in
    the building of the community (`scope` building). Open until `closes_at` or
    until staff close it with a `decision`, which is published back to them.
    """

    __tablename__ = "consultations"
    __table_args__ = (
        CheckConstraint(_in_list("status", CONSULTATION_STATUSES), name="status"),
        CheckConstraint(_in_list("scope", CONSULTATION_SCOPES), name="scope"),
        Index("ix_consultations_status_community", "status", "community_id"),
    )

    id = Column(Integer, primary_key=True)
    ticket_id = Column(ForeignKey("tickets.id"), nullable=True, index=True)
    community_id = Column(ForeignKey("communities.id"), nullable=False)
    scope = Column(String(16), nullable=False)
    grid_id = Column(ForeignKey("grids.id"), nullable=True)
    building = Column(Integer, nullable=True)
    question = Column(Text, nullable=False)
    options = Column(JSON, nullable=False, default=list)  # list[str], answered by number
    closes_at = Column(UTCDateTime(), nullable=False)
    status = Column(String(16), nullable=False, default="open")
    decision = Column(Text, nullable=True)
    created_by = Column(String(128), nullable=False)
    closed_by = Column(String(128), nullable=True)
    closed_at = Column(UTCDateTime(), nullable=True)

    community = relationship("Community")
    grid = relationship("Grid")
    ticket = relationship("Ticket")


class ConsultationVote(Base):
    """One resident's answer to a consultation: one row per resident, enforced by the
    database (two answers at once cannot both count)."""

    __tablename__ = "consultation_votes"
    __table_args__ = (
        UniqueConstraint("consultation_id", "voter", name="uq_consultation_votes_voter"),
        CheckConstraint(_in_list("channel", VOTE_CHANNELS), name="channel"),
    )

    id = Column(Integer, primary_key=True)
    consultation_id = Column(ForeignKey("consultations.id"), nullable=False)
    voter = Column(String(128), nullable=False)  # the resident's sender_id (OpenID)
    option = Column(Integer, nullable=False)  # index into Consultation.options
    channel = Column(String(16), nullable=False)
    at = Column(UTCDateTime(), nullable=False, default=utcnow)


class Open311Update(Base):
    """A request update another city system posted (mySociety's Open311
    extension, bot.open311.updates): its own id, kept so that a replay of the
    same update changes nothing, and the ticket event it became."""

    __tablename__ = "open311_updates"
    __table_args__ = (
        UniqueConstraint("source", "update_id", name="uq_open311_updates_source_update"),
    )

    id = Column(Integer, primary_key=True)
    source = Column(String(64), nullable=False)  # "open311:<key prefix>"
    update_id = Column(String(128), nullable=False)  # the poster's id of the update
    ticket_id = Column(ForeignKey("tickets.id"), nullable=False)
    event_id = Column(ForeignKey("ticket_events.id"), nullable=True)  # set once applied
    status = Column(String(32), nullable=False)  # as posted, lower case
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
