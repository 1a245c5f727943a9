"""What the worker pages show, without HTTP (bot.tickets.queries)."""

from __future__ import annotations

from datetime import timedelta

from bot.store.models import utcnow
from bot.tickets.display import duration_text
from bot.tickets.queries import sla_state


def test_sla_state() -> None:
    now = utcnow()
    assert sla_state("open", now - timedelta(minutes=1), 24, now).css == "overdue"
    # 24 h SLA: amber below 6 h (25 %); 168 h SLA: below 42 h; 8 h SLA: below 4 h.
    assert sla_state("accepted", now + timedelta(hours=5), 24, now).css == "due-soon"
    assert sla_state("accepted", now + timedelta(hours=7), 24, now).css == "on-time"
    assert sla_state("open", now + timedelta(hours=40), 168, now).css == "due-soon"
    assert sla_state("open", now + timedelta(hours=3), 8, now).css == "due-soon"
    assert sla_state("resolved", now - timedelta(hours=1), 24, now).css == ""
    assert sla_state("open", None, 24, now).css == ""
    assert duration_text(timedelta(days=2, hours=3, minutes=5)) == "2天3小时"
    assert duration_text(timedelta(hours=5, minutes=12)) == "5小时12分"
    assert duration_text(timedelta(minutes=-40)) == "40分钟"
