"""What people read about a ticket, worded once.

Residents (the assistant's replies, the simulator's "我的工单") and staff (the
worker pages, WeCom notices, the admin console and its CSV, Open311) see the
same words for the same thing: a status, a level, a category, an address, the
office or the person who has the ticket, a time. Every place that shows one of
them calls this module; nothing else words them.

Only plain values come in (strings, numbers, datetimes, or a Ticket read
through its attributes), so the module has no database of its own and imports
no ORM code at load time (bot.tickets.state and bot.store import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import Enum
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.settings import get_settings
from bot.taxonomy import Taxonomy, get_taxonomy

if TYPE_CHECKING:
    from bot.routing.locator import Located
    from bot.store.models import Ticket

# -- statuses, actions, events, levels ----------------------------------------------

# One word per status for everyone: a resident checking progress and a worker
# scanning the inbox read the same label.
STATUS_LABELS = {
    "open": "待受理",
    "accepted": "处理中",
    "escalated": "已上报上级",
    "resolved": "已处理，待确认",  # waiting for the resident's 满意 / 不满意
    "closed": "已办结",
    "cancelled": "已撤销",
}

# What a worker (or the state machine's refusal) calls each action.
ACTION_LABELS = {
    "accept": "受理",
    "resolve": "办结",
    "escalate": "升级",
    "cancel": "撤销",
    "transfer": "转派",
    "close": "关闭",
    "reopen": "重新打开",
}

# A ticket's history (TicketEvent.type).
EVENT_LABELS = {
    "created": "登记",
    "assigned": "分派",
    "accepted": "受理",
    "note": "备注",
    "resolved": "办结",
    "cancelled": "撤销",
    "escalated": "升级",
    "reopened": "重新打开",
    "transferred": "转派",
    "closed": "关闭",
}

LEVEL_LABELS = {"grid": "网格", "community": "社区", "street": "街道"}

# What a resident may do with their own ticket on the "my reports" page (bot.tickets.mine).
RESIDENT_ACTION_LABELS = {
    "cancel": "撤销",
    "satisfied": "满意",
    "unsatisfied": "不满意",
    "reopen": "重新打开",
}
# What the page says once it is done.
RESIDENT_ACTION_DONE = {
    "cancel": "已撤销该工单。",
    "satisfied": "感谢您的评价，工单已办结。",
    "unsatisfied": "已收到您的意见，工单已重新打开，网格员会再来处理。",
    "reopen": "工单已重新打开，网格员会再来处理。",
}


def _value(code: str | Enum) -> str:
    # str-Enums (Status, Action) hash by name, not by value: look up the value.
    return code.value if isinstance(code, Enum) else str(code)


def status_label(status: str | Enum) -> str:
    return STATUS_LABELS.get(_value(status), _value(status))


def action_label(action: str | Enum) -> str:
    return ACTION_LABELS.get(_value(action), _value(action))


def event_label(event_type: str) -> str:
    return EVENT_LABELS.get(event_type, event_type)


def resident_action_label(action: str) -> str:
    return RESIDENT_ACTION_LABELS.get(action, action)


def level_label(level: str | None) -> str:
    return LEVEL_LABELS.get(level or "", level or "")


def category_label(code: str, taxonomy: Taxonomy | None = None) -> str:
    """The category's label from taxonomy.yml (the code itself when unknown)."""
    category = (taxonomy or get_taxonomy()).by_code(code)
    return category.label if category else code


# The bodies of a community office that taxonomy.yml's handled_by may name.
BODY_LABELS = {"mediation_committee": "人民调解委员会", "residents_council": "居民议事会"}


def body_label(handled_by: str) -> str | None:
    """The body that takes a matter on, when it is not the office or worker itself."""
    return BODY_LABELS.get(handled_by)


# -- people ---------------------------------------------------------------------------

ROLE_LABELS = {"grid_worker": "网格员", "community_staff": "社区工作人员", "admin": "管理员"}
STAFF = "工作人员"  # someone whose role is not known


def role_label(role: str | None) -> str:
    return ROLE_LABELS.get(role or "", STAFF)


def staff_label(name: str, role: str | None) -> str:
    """网格员王芳 / 社区工作人员周敏: a member of staff as anyone reads them."""
    return f"{role_label(role)}{name}"


RESIDENT = "居民"
SYSTEM = "系统"


def actor_label(actor: str) -> str:
    """Who did something in a ticket's history: worker:3:王芳 -> 王芳; resident:… -> 居民."""
    if actor.startswith("worker:"):
        parts = actor.split(":", 2)
        return parts[2] if len(parts) == 3 and parts[2] else f"{STAFF}{parts[1]}"
    if actor.startswith("resident"):
        return RESIDENT
    if actor == "system:escalation":
        return f"{SYSTEM}（超时升级）"
    if actor.startswith("system"):
        return SYSTEM
    if actor.startswith("open311"):
        return "外部系统"
    return actor


def resident_subject(kind: str, category: str) -> str:
    """How a resident's own matter is named to them: 您反映的供暖供气问题."""
    if kind == "handoff":
        return "您请工作人员联系您的事"
    if kind == "service":
        return f"您申请办理的{category}事项"
    if kind == "proposal":
        return f"您提出的{category}事项"
    return f"您反映的{category}问题"


# -- offices ----------------------------------------------------------------------------

STREET_OFFICE = "街道办事处"
COMMUNITY_OFFICE = "社区居委会"  # the office of a community not known yet
CITY_HOTLINE = "12345"  # the number residents are given when an office has none


def community_office(community: str | None, office_name: str | None = None) -> str:
    """和平新村社区居委会: the office of a community (its own name when the directory has one)."""
    if office_name:
        return office_name
    return f"{community}居委会" if community else COMMUNITY_OFFICE


def street_office(street: str | None, office_name: str | None = None) -> str:
    return office_name or street or STREET_OFFICE


def office_label(
    level: str | None,
    community: str | None = None,
    community_office_name: str | None = None,
    street: str | None = None,
    street_office_name: str | None = None,
) -> str:
    """The office that answers for a ticket at `level` (street level: the street's)."""
    if level == "street":
        return street_office(street, street_office_name)
    return community_office(community, community_office_name)


def office_of(ticket: Ticket, level: str | None = None) -> str:
    """`office_label` for a loaded Ticket (at its own level unless `level` is given)."""
    level = level or ticket.level
    community = ticket.community
    street = community.street if community is not None and level == "street" else None
    return office_label(
        level,
        community.name if community is not None else None,
        community.office_name if community is not None else None,
        street.name if street is not None else None,
        street.office_name if street is not None else None,
    )


def handler_label(worker_name: str | None, worker_role: str | None, office: str) -> str:
    """Who has a ticket: the member of staff, else the office."""
    return staff_label(worker_name, worker_role) if worker_name else office


def handler_of(ticket: Ticket) -> str:
    """`handler_label` for a loaded Ticket: its assignee; at grid level without one,
    the grid's worker; otherwise the office of its level."""
    worker = ticket.assignee
    if worker is None and ticket.level == "grid" and ticket.grid is not None:
        worker = ticket.grid.worker
    if worker is not None:
        return staff_label(worker.name, worker.role)
    return office_of(ticket)


# -- addresses --------------------------------------------------------------------------

NO_ADDRESS = "未提供地址"


@dataclass(frozen=True)
class Place:
    """What an address is made of: the directory's community and the parts the
    resident gave, their own words, a shared location."""

    community: str | None = None
    building: int | None = None
    unit: str | None = None
    room: str | None = None
    words: str | None = None  # as the resident (or a system) wrote it
    lat: float | None = None
    lon: float | None = None


def place_of(where: Ticket | Located) -> Place:
    """The Place of a loaded Ticket (its community a row) or of a Located (a name)."""
    community = where.community
    return Place(
        community=community if isinstance(community, str) or community is None else community.name,
        building=where.building,
        unit=where.unit,
        room=where.room,
        words=where.address_text,
        lat=where.lat,
        lon=where.lon,
    )


def room_label(room: str) -> str:
    """501 -> 501室 (a room the parser read as digits); anything else as written."""
    return f"{room}室" if room.isdigit() else room


def coordinates_label(lat: float, lon: float) -> str:
    return f"位置（{lat:.5f}, {lon:.5f}）"


def address_label(
    place: Place, *, with_room: bool = True, missing: str | None = NO_ADDRESS
) -> str | None:
    """和平新村社区3号楼2单元501室; the way everyone reads a ticket's address.

    A known community comes with the building, unit and room the resident gave;
    without a building, the resident's words follow in brackets when they say
    more than the community's name. `with_room=False` (public answers, which
    must not pin down a household) leaves out the room and those words. Without
    a community: the resident's words, else the shared location, else `missing`.
    """
    if place.community:
        text = place.community
        if place.building is not None:
            text += f"{place.building}号楼"
            if place.unit:
                text += f"{place.unit}单元"
            if place.room and with_room:
                text += room_label(place.room)
        elif with_room and place.words and place.words.strip() not in text:
            text += f"（{place.words.strip()}）"
        return text
    if place.words and place.words.strip():
        return place.words.strip()
    if place.lat is not None and place.lon is not None:
        return coordinates_label(place.lat, place.lon)
    return missing


def located_address(located: Located) -> str:
    """`address_label` of where the locator put a resident (read back to them)."""
    return address_label(place_of(located)) or NO_ADDRESS


def address_of(ticket: Ticket, *, with_room: bool = True) -> str:
    return address_label(place_of(ticket), with_room=with_room) or NO_ADDRESS


def words_beside(label: str, place: Place) -> str | None:
    """The resident's own words for the address, when the label does not already say them."""
    words = (place.words or "").strip()
    return words if words and words not in label else None


# -- times ------------------------------------------------------------------------------

SOON = "尽快"  # a promise without a deadline
NO_DEADLINE = "未设定"


Zone = tzinfo | str | None  # a zone, its name, or None for settings.timezone


def local_time(value: datetime, zone: Zone = None) -> datetime:
    """`value` in the service's time zone (settings.timezone unless `zone`)."""
    if zone is None or isinstance(zone, str):
        zone = ZoneInfo(zone or get_settings().timezone)
    return value.astimezone(zone)


def resident_time(value: datetime, zone: Zone = None) -> str:
    """11月28日10:30: a time as the assistant tells residents."""
    local = local_time(value, zone)
    return f"{local.month}月{local.day}日{local:%H:%M}"


def staff_time(value: datetime | None, zone: Zone = None) -> str:
    """2026-11-28 10:30: a time on the pages, in notices and the CSV ("" for none)."""
    return local_time(value, zone).strftime("%Y-%m-%d %H:%M") if value is not None else ""


def due_text(value: datetime | None, zone: Zone = None) -> str:
    """When the resident hears back: 11月28日10:30, or 尽快 without a deadline."""
    return resident_time(value, zone) if value is not None else SOON


def deadline_text(value: datetime | None, zone: Zone = None) -> str:
    """A deadline as staff read it: 2026-11-28 10:30, or 未设定."""
    return staff_time(value, zone) if value is not None else NO_DEADLINE


def duration_text(delta: timedelta) -> str:
    """3天2小时 / 5小时12分 / 40分钟 (absolute value, rounded down to minutes)."""
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{mins}分" if mins else f"{hours}小时"
    return f"{mins}分钟"


def overdue_text(delta: timedelta) -> str:
    return f"已超时{duration_text(delta)}"


def remaining_text(delta: timedelta) -> str:
    return f"剩余{duration_text(delta)}"
