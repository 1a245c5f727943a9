"""Ticket news as a WeChat template message, for residents outside the 48-hour window.

WeChat's customer-service messages reach only residents who wrote within the last
48 hours; a service account may send a template message any time. Which template
and which of its fields carry what are settings (WECHAT_TEMPLATE_TICKET_UPDATE,
WECHAT_TEMPLATE_FIELDS, WECHAT_TEMPLATE_LINK), never code: the template is chosen
in the account's back office and its field names differ from one to another.

The outbox stores the values with the notice (`values_for`); the sender turns them
into the template's data (`template_data`) when the window is closed.
"""

from __future__ import annotations

from datetime import datetime

from bot.settings import Settings
from bot.store.models import Ticket
from bot.tickets import display

# What a template field may carry.
VALUE_NAMES = ("category", "number", "status", "note", "time", "address")

# WeChat's limits per field type (the prefix of the field's name); longer values
# make the whole send fail (errcode 47003), so they are cut.
_LIMITS = (("character_string", 32), ("thing", 20), ("phrase", 5), ("time", 40), ("number", 32))
DEFAULT_LIMIT = 20
ELLIPSIS = "…"


class TemplateConfigError(ValueError):
    """WECHAT_TEMPLATE_FIELDS cannot be read."""


def field_map(spec: str) -> list[tuple[str, str]]:
    """`thing1=category,time5=time` -> [("thing1", "category"), ("time5", "time")]."""
    pairs: list[tuple[str, str]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, sep, value = (x.strip() for x in part.partition("="))
        if not sep or not name or value not in VALUE_NAMES:
            raise TemplateConfigError(
                f"WECHAT_TEMPLATE_FIELDS: {part!r} is not field=value "
                f"(values: {', '.join(VALUE_NAMES)})"
            )
        pairs.append((name, value))
    if not pairs:
        raise TemplateConfigError("WECHAT_TEMPLATE_FIELDS names no field")
    return pairs


def values_for(ticket: Ticket, note: str | None, now: datetime) -> dict[str, str]:
    """What a template may show about the ticket's news, worded as residents read it."""
    place = display.place_of(ticket)
    return {
        "category": display.category_label(ticket.category_code),
        "number": ticket.number,
        "status": display.status_label(ticket.status),
        "note": " ".join((note or "").split()) or display.status_label(ticket.status),
        "time": display.local_time(now).strftime("%Y-%m-%d %H:%M"),
        "address": display.address_label(place) or display.NO_ADDRESS,
    }


def _cut(field: str, value: str) -> str:
    limit = next((n for prefix, n in _LIMITS if field.startswith(prefix)), DEFAULT_LIMIT)
    if len(value) <= limit:
        return value
    if field.startswith("phrase"):
        head = value.split("，", 1)[0]  # "已处理，待确认" -> "已处理" (5 characters)
        if len(head) <= limit:
            return head
    return value[: limit - 1] + ELLIPSIS


def template_data(values: dict[str, str], spec: str) -> dict[str, str]:
    """The template's fields filled from the stored values (TemplateConfigError)."""
    return {field: _cut(field, str(values.get(name, ""))) for field, name in field_map(spec)}


def template_link(settings: Settings, number: str) -> str:
    """The page the template message opens: the resident's view of their tickets."""
    path = settings.wechat_template_link.replace("{number}", number)
    if path.startswith(("http://", "https://")):
        return path
    return settings.public_web_url + "/" + path.lstrip("/")


def is_configured(settings: Settings) -> bool:
    return bool((settings.wechat_template_ticket_update or "").strip())
