"""Delivering the outbox: the web app's background sender.

`deliver_due` takes the pending notifications that are due, sends each (WeCom group
robot or WeChat customer-service API) and records the outcome on the row:

    sent      delivered; sent_at set
    pending   failed for now: next_attempt_at moved by exponential backoff with jitter
              (10 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h), last_error kept
    failed    still failing after MAX_ATTEMPTS; last_error kept
    deferred  WeChat does not allow pushing to the resident now (outside the 48-h
              window with no template message configured, quota used, or no
              credentials): given with their next message

A resident's news goes as a customer-service message within WeChat's 48-hour window
and as a template message outside it (bot.notify.template); `delivered_via` records
which.

Several web processes may run a sender each. A row is claimed with a conditional
UPDATE (still pending, attempts unchanged) before it is sent, and the claim moves
next_attempt_at a lease ahead; so two senders never send the same row, and a row
whose sender died mid-send is tried again once the lease has passed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine

from bot.channels.wechat_api import SendStatus, WeChatApiClient
from bot.notify import template
from bot.notify.outbox import VIA_CUSTOMER_SERVICE, VIA_TEMPLATE
from bot.notify.wecom import RateLimiter, WeComRobot
from bot.settings import Settings
from bot.store.db import session_scope
from bot.store.models import Notification, aware, utcnow

logger = logging.getLogger(__name__)

__all__ = [
    "BACKOFF_SECONDS",
    "MAX_ATTEMPTS",
    "DeliveryReport",
    "backoff_seconds",
    "deliver_due",
    "run_sender",
    "sender_ctx",
]

MAX_ATTEMPTS = 8
BACKOFF_SECONDS = (10, 30, 120, 600, 1800, 3600, 7200)
JITTER = 0.2  # +-20 %: senders that failed together do not retry together
LEASE_SECONDS = 120  # longer than any send may take
RATE_LIMITED_RETRY_SECONDS = 60.0
BATCH = 50
SHUTDOWN_GRACE_SECONDS = 5.0
DEFERRED_STATUSES = frozenset(
    {SendStatus.OUTSIDE_WINDOW, SendStatus.QUOTA_EXCEEDED, SendStatus.NOT_CONFIGURED}
)
# WeChat delivers customer-service messages within 48 hours of the resident's last
# message (or menu click, or subscription).
CUSTOMER_SERVICE_WINDOW = timedelta(hours=48)
# Template sends WeChat refuses for good: 43004 the resident does not follow the
# account, 40037 invalid template id, 47003 bad template data.
TEMPLATE_REFUSED = frozenset({43004, 40037, 47003})

# One limiter per process: the robot's limit holds whoever calls deliver_due.
_default_limiter = RateLimiter()


def backoff_seconds(attempts: int, rng: random.Random | None = None) -> float:
    """Wait after the `attempts`-th failed attempt (1-based), with jitter."""
    base = BACKOFF_SECONDS[min(max(attempts, 1), len(BACKOFF_SECONDS)) - 1]
    return base * (1 + (rng or random).uniform(-JITTER, JITTER))


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)
    postponed: list[int] = field(default_factory=list)  # waiting for a robot's free slot
    skipped: list[int] = field(default_factory=list)  # claimed by another sender

    def merge(self, other: DeliveryReport) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))


@dataclass(frozen=True)
class _Row:
    id: int
    channel: str
    target: str
    kind: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class _Outcome:
    status: str  # sent | retry | deferred | rate_limited
    error: str | None = None
    via: str | None = None  # how a resident's news went out (Notification.delivered_via)


# -- database steps (each one short transaction, run in a thread) -----------------------


def _due_rows(engine: Engine, now: datetime, limit: int) -> list[_Row]:
    with session_scope(engine, readonly=True) as session:
        rows = session.execute(
            select(Notification)
            .where(
                Notification.status == "pending",
                or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now),
            )
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
        ).scalars()
        return [
            _Row(r.id, r.channel, r.target, r.kind, dict(r.payload or {}), r.attempts) for r in rows
        ]


def _pending(row: _Row, attempts: int) -> Any:
    return (
        update(Notification)
        .where(
            Notification.id == row.id,
            Notification.status == "pending",
            Notification.attempts == attempts,
        )
        .execution_options(synchronize_session=False)
    )


def _claim(engine: Engine, row: _Row, now: datetime) -> bool:
    """Ours to send if no other sender claimed it since we read it."""
    with session_scope(engine) as session:
        result = session.execute(
            _pending(row, row.attempts)
            .where(or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now))
            .values(
                attempts=row.attempts + 1,
                next_attempt_at=now + timedelta(seconds=LEASE_SECONDS),
                updated_at=now,
            )
        )
        return result.rowcount == 1


def _postpone(engine: Engine, row: _Row, until: datetime, now: datetime) -> None:
    with session_scope(engine) as session:
        session.execute(_pending(row, row.attempts).values(next_attempt_at=until, updated_at=now))


def _finish(
    engine: Engine, row: _Row, outcome: _Outcome, now: datetime, rng: random.Random | None
) -> str:
    """Record the outcome of our attempt; returns the report bucket."""
    attempts = row.attempts + 1
    values: dict[str, Any] = {"updated_at": now}
    if outcome.status == "sent":
        values.update(status="sent", sent_at=now, next_attempt_at=None, delivered_via=outcome.via)
        bucket = "sent"
    elif outcome.status == "deferred":
        values.update(status="deferred", next_attempt_at=None, last_error=outcome.error)
        bucket = "deferred"
    elif outcome.status == "rate_limited":
        # Not the message's fault: the attempt does not count.
        values.update(
            attempts=row.attempts,
            next_attempt_at=now + timedelta(seconds=RATE_LIMITED_RETRY_SECONDS),
            last_error=outcome.error,
        )
        bucket = "postponed"
    elif attempts >= MAX_ATTEMPTS:
        values.update(status="failed", next_attempt_at=None, last_error=outcome.error)
        bucket = "failed"
    else:
        values.update(
            next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts, rng)),
            last_error=outcome.error,
        )
        bucket = "retried"
    with session_scope(engine) as session:
        # Conditional on our claim: if our lease ran out and another sender took the
        # row meanwhile, its outcome is the one that counts.
        session.execute(_pending(row, attempts).values(**values))
    return bucket


# -- sending -----------------------------------------------------------------------------


# When a resident last wrote (None: unknown); the conversation log knows.
LastMessageAt = Callable[[str], "datetime | None"]


@dataclass
class _Context:
    engine: Engine
    robot: WeComRobot
    limiter: RateLimiter
    wechat: WeChatApiClient
    now: datetime
    rng: random.Random | None
    settings: Settings | None = None
    last_message_at: LastMessageAt | None = None


async def _send(ctx: _Context, row: _Row) -> _Outcome:
    if row.channel == "wecom":
        result = await ctx.robot.send(row.target, row.payload)
        if result.ok:
            return _Outcome("sent")
        if result.rate_limited:
            ctx.limiter.saturate(row.target, ctx.now.timestamp())
            return _Outcome("rate_limited", result.error)
        return _Outcome("retry", result.error)
    if row.channel == "wechat":
        return await _send_to_resident(ctx, row)
    return _Outcome("retry", f"unknown channel {row.channel!r}")


async def _send_to_resident(ctx: _Context, row: _Row) -> _Outcome:
    """A customer-service message within WeChat's 48-hour window; outside it (known
    from the conversation log, or WeChat's 45015/45047) a template message when one
    is configured, else the news waits for the resident's next message."""
    text = row.payload.get("text")
    if not isinstance(text, str) or not text:
        return _Outcome("retry", "payload has no text")
    if not await _window_closed(ctx, row.target):
        sent = await ctx.wechat.send_text(row.target, text)
        error = f"{sent.status.value}: errcode {sent.errcode} {sent.errmsg}".strip()
        if sent.ok:
            return _Outcome("sent", via=VIA_CUSTOMER_SERVICE)
        if sent.status is SendStatus.NOT_CONFIGURED:
            return _Outcome("deferred", error)
        if sent.status not in DEFERRED_STATUSES:
            return _Outcome("retry", error)
    else:
        error = "outside the 48-hour window (conversation log)"
    return await _send_template(ctx, row, error)


async def _window_closed(ctx: _Context, openid: str) -> bool:
    if ctx.last_message_at is None:
        return False
    try:
        last = await asyncio.to_thread(ctx.last_message_at, openid)
    except Exception:  # noqa: BLE001 - unknown: let WeChat tell
        logger.exception("last message of %s unknown", openid)
        return False
    return last is not None and ctx.now - last > CUSTOMER_SERVICE_WINDOW


async def _send_template(ctx: _Context, row: _Row, why: str) -> _Outcome:
    settings = ctx.settings
    values = row.payload.get("values")
    if settings is None or not template.is_configured(settings) or not isinstance(values, dict):
        return _Outcome("deferred", f"{why}; no template message configured")
    try:
        data = template.template_data(values, settings.wechat_template_fields)
    except template.TemplateConfigError as error:
        logger.error("%s", error)
        return _Outcome("deferred", f"{why}; {error}")
    number = str(values.get("number") or "")
    sent = await ctx.wechat.send_template(
        row.target,
        (settings.wechat_template_ticket_update or "").strip(),
        template.template_link(settings, number) if number else None,
        data,
    )
    error = f"template {sent.status.value}: errcode {sent.errcode} {sent.errmsg}".strip()
    if sent.ok:
        return _Outcome("sent", via=VIA_TEMPLATE)
    if sent.errcode in TEMPLATE_REFUSED or sent.status in DEFERRED_STATUSES:
        # the resident unfollowed, or the template is wrong: retrying will not help
        return _Outcome("deferred", f"{why}; {error}")
    return _Outcome("retry", f"{why}; {error}")


async def _deliver_one(ctx: _Context, row: _Row, report: DeliveryReport) -> None:
    slot: float | None = None
    if row.channel == "wecom":
        slot = ctx.now.timestamp()
        wait = ctx.limiter.try_reserve(row.target, slot)
        if wait > 0:
            # The robot's minute is full: the message waits for the next free slot.
            until = ctx.now + timedelta(seconds=wait)
            await asyncio.to_thread(_postpone, ctx.engine, row, until, ctx.now)
            report.postponed.append(row.id)
            return
    if not await asyncio.to_thread(_claim, ctx.engine, row, ctx.now):
        if slot is not None:
            ctx.limiter.release(row.target, slot)
        report.skipped.append(row.id)
        return
    try:
        outcome = await _send(ctx, row)
    except Exception as exc:  # noqa: BLE001 - a bug in one send must not stop the others
        logger.exception("notification %s: send failed", row.id)
        outcome = _Outcome("retry", f"internal error: {type(exc).__name__}")
    bucket = await asyncio.to_thread(_finish, ctx.engine, row, outcome, ctx.now, ctx.rng)
    getattr(report, bucket).append(row.id)
    if bucket in ("retried", "failed"):
        logger.warning(
            "notification %s (%s %s) attempt %s failed: %s",
            row.id,
            row.channel,
            row.kind,
            row.attempts + 1,
            outcome.error,
        )


async def _deliver_group(ctx: _Context, rows: list[_Row]) -> DeliveryReport:
    # One target's messages in order, one after the other.
    report = DeliveryReport()
    for row in rows:
        await _deliver_one(ctx, row, report)
    return report


async def deliver_due(
    engine: Engine,
    http: aiohttp.ClientSession,
    settings: Settings,
    now: datetime | None = None,
    *,
    limiter: RateLimiter | None = None,
    wechat: WeChatApiClient | None = None,
    rng: random.Random | None = None,
    timeout_seconds: float = 10.0,
    batch: int = BATCH,
    last_message_at: LastMessageAt | None = None,
) -> DeliveryReport:
    """Send the notifications due at `now` once each; record every outcome.

    `wechat` is the customer-service client to use (it caches the access token, so
    long-running callers pass one in); without it a client is made for this call.
    Different targets are served concurrently, each target's messages in order.
    `last_message_at` tells when a resident last wrote (the conversation log), so
    news outside WeChat's 48-hour window goes straight to a template message.
    """
    now = aware(now)
    rows = await asyncio.to_thread(_due_rows, engine, now, batch)
    if not rows:
        return DeliveryReport()
    own_wechat = wechat is None
    if wechat is None:
        wechat = WeChatApiClient.for_deployment(settings, timeout_seconds=timeout_seconds)
    limiter = limiter or _default_limiter
    ctx = _Context(
        engine=engine,
        robot=WeComRobot(http, settings.wecom_api_base, timeout_seconds=timeout_seconds),
        limiter=limiter,
        wechat=wechat,
        now=now,
        rng=rng,
        settings=settings,
        last_message_at=last_message_at,
    )
    groups: dict[tuple[str, str], list[_Row]] = {}
    for row in rows:
        groups.setdefault((row.channel, row.target), []).append(row)
    report = DeliveryReport()
    try:
        for part in await asyncio.gather(*(_deliver_group(ctx, g) for g in groups.values())):
            report.merge(part)
    finally:
        if own_wechat:
            await wechat.close()
    return report


# -- the web app's background task -------------------------------------------------------


async def run_sender(app: web.Application, stop: asyncio.Event | None = None) -> None:
    """Deliver due notifications every `notify_interval_seconds` until `stop` is set
    (the round in progress is finished first) or the task is cancelled."""
    from bot.web.keys import CONVERSATION_LOG, ENGINE, HTTP, SETTINGS

    settings: Settings = app[SETTINGS]
    log = app.get(CONVERSATION_LOG)
    last_message_at = log.last_message_at if log is not None else None
    interval = settings.notify_interval_seconds
    stop = stop or asyncio.Event()
    # The token is the deployment's (shared with the Rasa servers' channel).
    wechat = WeChatApiClient.for_deployment(settings)
    try:
        while not stop.is_set():
            try:
                report = await deliver_due(
                    app[ENGINE],
                    app[HTTP],
                    settings,
                    utcnow(),
                    wechat=wechat,
                    last_message_at=last_message_at,
                )
                if report.sent or report.failed:
                    logger.info(
                        "notifications: %s sent, %s failed", len(report.sent), len(report.failed)
                    )
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the loop alive; the next round retries
                logger.exception("notification sender round failed")
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        await wechat.close()


async def sender_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the sender runs while the app does and stops cleanly on shutdown.

    Shutdown lets the round in progress record what it sent (otherwise a message sent
    but not yet marked would go out again after the restart) for up to
    SHUTDOWN_GRACE_SECONDS, then cancels it. NOTIFY_INTERVAL_SECONDS <= 0 switches the
    sender off (e.g. a second web process that should not send).
    """
    from bot.web.keys import SETTINGS

    if app[SETTINGS].notify_interval_seconds <= 0:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(run_sender(app, stop), name="notification-sender")
    try:
        yield
    finally:
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_GRACE_SECONDS)
        if not done:
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - shutting down anyway
            logger.exception("notification sender failed")
