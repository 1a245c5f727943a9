"""A report opens one ticket, enforced by the database: tickets.report_key.

The key (the id of the message that started the report) was only recorded in
the ticket's "created" event; it is copied from there (the oldest ticket of a
key keeps it, should a race have opened two) and made unique per sender.

Revision ID: 0010_ticket_report_key
Revises: 0009_shared_state
Create Date: 2026-12-07
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0010_ticket_report_key"
down_revision = "0009_shared_state"
branch_labels = None
depends_on = None

tickets = sa.table(
    "tickets",
    sa.column("id", sa.Integer),
    sa.column("sender_id", sa.String),
    sa.column("report_key", sa.String),
)
events = sa.table(
    "ticket_events",
    sa.column("ticket_id", sa.Integer),
    sa.column("type", sa.String),
    sa.column("data", sa.JSON),
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("report_key", sa.String(128), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(tickets.c.id, tickets.c.sender_id, events.c.data)
        .join(events, events.c.ticket_id == tickets.c.id)
        .where(events.c.type == "created")
        .order_by(tickets.c.id)
    )
    seen: set[tuple[str, str]] = set()
    for ticket_id, sender_id, data in rows.all():
        if isinstance(data, str):
            data = json.loads(data)
        key = (data or {}).get("report_key")
        if not key or (sender_id, key) in seen:
            continue
        seen.add((sender_id, key))
        connection.execute(tickets.update().where(tickets.c.id == ticket_id).values(report_key=key))
    # A unique index rather than a constraint: SQLite adds it without copying the
    # table (which the foreign keys onto tickets would refuse).
    op.create_index("uq_tickets_sender_report", "tickets", ["sender_id", "report_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_tickets_sender_report", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("report_key")
