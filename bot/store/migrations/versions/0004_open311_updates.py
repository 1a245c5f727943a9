"""Open311 request updates posted by other city systems (idempotent by their id).

Revision ID: 0004_open311_updates
Revises: 0003_review
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_open311_updates"
down_revision = "0003_review"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open311_updates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("update_id", sa.String(128), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_open311_updates_ticket_id_tickets"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["ticket_events.id"], name="fk_open311_updates_event_id_ticket_events"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_open311_updates"),
        sa.UniqueConstraint("source", "update_id", name="uq_open311_updates_source_update"),
    )


def downgrade() -> None:
    op.drop_table("open311_updates")
