"""Photos attached to tickets (residents' WeChat images, workers' uploads); how a
resident's news went out (customer-service message, template message, next message).

Revision ID: 0005_ticket_photos
Revises: 0004_open311_updates
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_ticket_photos"
down_revision = "0004_open311_updates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("media_id", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("source IN ('resident', 'worker')", name="ck_ticket_photos_source"),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_ticket_photos_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_photos"),
        sa.UniqueConstraint("ticket_id", "sha256", name="uq_ticket_photos_ticket_sha256"),
    )
    op.create_index("ix_ticket_photos_ticket_id", "ticket_photos", ["ticket_id"])
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("delivered_via", sa.String(24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("delivered_via")
    op.drop_index("ix_ticket_photos_ticket_id", table_name="ticket_photos")
    op.drop_table("ticket_photos")
