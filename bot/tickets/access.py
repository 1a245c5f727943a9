"""Which tickets a worker may see: the one rule, for lists and single tickets.

- admin: every ticket;
- community staff: every ticket of their community, whatever its level (so
  tickets escalated to the community, and community matters with no grid);
- grid worker: the tickets of the grids they are the worker of.

Anyone also sees a ticket assigned to them personally (e.g. one they accepted).
A worker who may not see a ticket is told it does not exist (404), so ticket
numbers of other grids cannot be probed.

`visible_clause` (SQL) and `can_see` (Python, for a loaded ticket) state the
same rule twice; tests check that they agree on every ticket.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from bot.store.models import Grid, Ticket


class Viewer(Protocol):
    """What the rule needs of a worker (bot.accounts.CurrentWorker has it)."""

    id: int
    role: str
    community_id: int | None


def visible_clause(worker: Viewer) -> ColumnElement:
    """A WHERE clause on Ticket selecting the tickets `worker` may see."""
    mine = Ticket.assignee_id == worker.id
    if worker.role == "admin":
        return true()
    if worker.role == "community_staff":
        if worker.community_id is None:
            return mine
        return or_(Ticket.community_id == worker.community_id, mine)
    if worker.role == "grid_worker":
        my_grids = select(Grid.id).where(Grid.worker_id == worker.id).scalar_subquery()
        return or_(Ticket.grid_id.in_(my_grids), mine)
    return mine


def can_see(worker: Viewer, ticket: Ticket) -> bool:
    """Whether `worker` may see `ticket` (same rule as `visible_clause`)."""
    if worker.role == "admin":
        return True
    if ticket.assignee_id is not None and ticket.assignee_id == worker.id:
        return True
    if worker.role == "community_staff":
        return worker.community_id is not None and ticket.community_id == worker.community_id
    if worker.role == "grid_worker":
        return ticket.grid is not None and ticket.grid.worker_id == worker.id
    return False
