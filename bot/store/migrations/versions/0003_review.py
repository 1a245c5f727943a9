"""Review inbox: decisions on logged resident messages, and the derived message table.

Revision ID: 0003_review
Revises: 0002_notifications_api_keys
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_review"
down_revision = "0002_notifications_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("norm_hash", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("intent", sa.String(64), nullable=True),
        sa.Column("predicted_intent", sa.String(64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "action IN ('confirm', 'relabel', 'out_of_scope', 'dismiss')",
            name="ck_review_decisions_action",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_review_decisions"),
        sa.UniqueConstraint("norm_hash", name="uq_review_decisions_norm_hash"),
    )
    op.create_table(
        "review_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("norm_hash", sa.String(64), nullable=False),
        sa.Column("intent", sa.String(64), nullable=True),
        sa.Column("top_intent", sa.String(64), nullable=True),
        sa.Column("second_intent", sa.String(64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("worker_change", sa.String(16), nullable=True),
        sa.Column("suggested_intent", sa.String(64), nullable=True),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "worker_change IS NULL OR worker_change IN ('category', 'grid', 'both')",
            name="ck_review_messages_worker_change",
        ),
        sa.ForeignKeyConstraint(["grid_id"], ["grids.id"], name="fk_review_messages_grid_id_grids"),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_review_messages_ticket_id_tickets"
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["review_decisions.id"],
            name="fk_review_messages_decision_id_review_decisions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_review_messages"),
        sa.UniqueConstraint("event_id", name="uq_review_messages_event_id"),
    )
    op.create_index(
        "ix_review_messages_inbox",
        "review_messages",
        [
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
        ],
    )
    op.create_index("ix_review_messages_hash", "review_messages", ["norm_hash"])
    op.create_table(
        "review_groups",
        sa.Column("norm_hash", sa.String(64), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("min_confidence", sa.Float(), nullable=False),
        sa.Column("max_confidence", sa.Float(), nullable=False),
        sa.Column("min_margin", sa.Float(), nullable=False),
        sa.Column("newest", sa.DateTime(), nullable=False),
        sa.Column("rep_id", sa.Integer(), nullable=False),
        sa.Column("suggested_intent", sa.String(64), nullable=True),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("norm_hash", name="pk_review_groups"),
    )
    op.create_index(
        "ix_review_groups_confidence",
        "review_groups",
        ["min_confidence", "min_margin", "norm_hash"],
    )
    op.create_index(
        "ix_review_groups_margin", "review_groups", ["min_margin", "min_confidence", "norm_hash"]
    )
    op.create_index("ix_review_groups_newest", "review_groups", ["newest", "norm_hash"])
    op.create_index("ix_review_groups_size", "review_groups", ["messages", "norm_hash"])
    op.create_index("ix_review_messages_sender", "review_messages", ["sender_id", "timestamp"])
    op.create_index("ix_review_messages_ticket", "review_messages", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("review_groups")  # its indexes go with it
    op.drop_index("ix_review_messages_ticket", table_name="review_messages")
    op.drop_index("ix_review_messages_sender", table_name="review_messages")
    op.drop_index("ix_review_messages_hash", table_name="review_messages")
    op.drop_index("ix_review_messages_inbox", table_name="review_messages")
    op.drop_table("review_messages")
    op.drop_table("review_decisions")
