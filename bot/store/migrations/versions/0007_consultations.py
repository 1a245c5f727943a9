"""Consultations (协商议事): questions put to a grid or building, and residents' answers.

Revision ID: 0007_consultations
Revises: 0006_privacy
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_consultations"
down_revision = "0006_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consultations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("building", sa.Integer(), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("closes_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("closed_by", sa.String(128), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_consultations_status"),
        sa.CheckConstraint("scope IN ('grid', 'building')", name="ck_consultations_scope"),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_consultations_ticket_id_tickets"
        ),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name="fk_consultations_community_id_communities"
        ),
        sa.ForeignKeyConstraint(["grid_id"], ["grids.id"], name="fk_consultations_grid_id_grids"),
        sa.PrimaryKeyConstraint("id", name="pk_consultations"),
    )
    op.create_index("ix_consultations_ticket_id", "consultations", ["ticket_id"])
    op.create_index(
        "ix_consultations_status_community", "consultations", ["status", "community_id"]
    )
    op.create_table(
        "consultation_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultation_id", sa.Integer(), nullable=False),
        sa.Column("voter", sa.String(128), nullable=False),
        sa.Column("option", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("channel IN ('chat', 'page')", name="ck_consultation_votes_channel"),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
            name="fk_consultation_votes_consultation_id_consultations",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_consultation_votes"),
        sa.UniqueConstraint("consultation_id", "voter", name="uq_consultation_votes_voter"),
    )


def downgrade() -> None:
    op.drop_table("consultation_votes")
    op.drop_index("ix_consultations_status_community", table_name="consultations")
    op.drop_index("ix_consultations_ticket_id", table_name="consultations")
    op.drop_table("consultations")
