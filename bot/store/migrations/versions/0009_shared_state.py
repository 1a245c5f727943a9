"""Shared state in the database, for processes that share no Redis.

Revision ID: 0009_shared_state
Revises: 0008_incidents
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_shared_state"
down_revision = "0008_incidents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_values",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_shared_values"),
    )
    op.create_table(
        "shared_window_stamps",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("member", sa.String(255), nullable=False),
        sa.Column("stamp", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", "member", name="pk_shared_window_stamps"),
    )


def downgrade() -> None:
    op.drop_table("shared_window_stamps")
    op.drop_table("shared_values")
