"""Initial schema: directory (streets, communities, workers, grids, buildings),
residents, tickets, ticket events and counters.

Written by hand to match bot/store/models.py (tests/store compare the two).

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "streets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("office_name", sa.String(200), nullable=True),
        sa.Column("office_phone", sa.String(50), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_streets"),
        sa.UniqueConstraint("name", name="uq_streets_name"),
    )
    op.create_table(
        "communities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("street_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("office_name", sa.String(200), nullable=True),
        sa.Column("office_phone", sa.String(50), nullable=True),
        sa.Column("wecom_webhook_key", sa.String(200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["street_id"], ["streets.id"], name="fk_communities_street_id_streets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_communities"),
        sa.UniqueConstraint("name", name="uq_communities_name"),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(50), nullable=True),
        sa.Column("wecom_userid", sa.String(100), nullable=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "role IN ('grid_worker', 'community_staff', 'admin')", name="ck_workers_role"
        ),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name="fk_workers_community_id_communities"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
        sa.UniqueConstraint("phone", name="uq_workers_phone"),
    )
    op.create_table(
        "grids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("households", sa.Integer(), nullable=True),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("wecom_webhook_key", sa.String(200), nullable=True),
        sa.Column("polygon", sa.JSON(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name="fk_grids_community_id_communities"
        ),
        sa.ForeignKeyConstraint(["worker_id"], ["workers.id"], name="fk_grids_worker_id_workers"),
        sa.PrimaryKeyConstraint("id", name="pk_grids"),
        sa.UniqueConstraint("code", name="uq_grids_code"),
    )
    op.create_index("ix_grids_community_id", "grids", ["community_id"])
    op.create_table(
        "grid_buildings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("building", sa.Integer(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name="fk_grid_buildings_community_id_communities",
        ),
        sa.ForeignKeyConstraint(["grid_id"], ["grids.id"], name="fk_grid_buildings_grid_id_grids"),
        sa.PrimaryKeyConstraint("id", name="pk_grid_buildings"),
        sa.UniqueConstraint("community_id", "building", name="uq_grid_buildings_community_id"),
    )
    op.create_index("ix_grid_buildings_grid_id", "grid_buildings", ["grid_id"])
    op.create_table(
        "residents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("community_id", sa.Integer(), nullable=True),
        sa.Column("building", sa.Integer(), nullable=True),
        sa.Column("unit", sa.String(16), nullable=True),
        sa.Column("room", sa.String(16), nullable=True),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("last_lat", sa.Float(), nullable=True),
        sa.Column("last_lon", sa.Float(), nullable=True),
        sa.Column("located_at", sa.DateTime(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name="fk_residents_community_id_communities"
        ),
        sa.ForeignKeyConstraint(["grid_id"], ["grids.id"], name="fk_residents_grid_id_grids"),
        sa.PrimaryKeyConstraint("id", name="pk_residents"),
        sa.UniqueConstraint("sender_id", name="uq_residents_sender_id"),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_counters"),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("category_code", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("original_text", sa.Text(), nullable=True),
        sa.Column("community_id", sa.Integer(), nullable=True),
        sa.Column("building", sa.Integer(), nullable=True),
        sa.Column("unit", sa.String(16), nullable=True),
        sa.Column("room", sa.String(16), nullable=True),
        sa.Column("address_text", sa.Text(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("routing_reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=True),
        sa.Column("photos", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('open', 'accepted', 'resolved', 'closed', 'cancelled', 'escalated')",
            name="ck_tickets_status",
        ),
        sa.CheckConstraint("level IN ('grid', 'community', 'street')", name="ck_tickets_level"),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name="fk_tickets_community_id_communities"
        ),
        sa.ForeignKeyConstraint(["grid_id"], ["grids.id"], name="fk_tickets_grid_id_grids"),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["workers.id"], name="fk_tickets_assignee_id_workers"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.UniqueConstraint("number", name="uq_tickets_number"),
        sa.UniqueConstraint("sender_id", "message_id", name="uq_tickets_sender_message"),
    )
    op.create_index("ix_tickets_sender_status", "tickets", ["sender_id", "status"])
    op.create_index("ix_tickets_grid_status_due", "tickets", ["grid_id", "status", "due_at"])
    op.create_index("ix_tickets_status_due", "tickets", ["status", "due_at"])
    op.create_index("ix_tickets_community_status", "tickets", ["community_id", "status"])
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "type IN ('created', 'assigned', 'accepted', 'note', 'resolved', 'cancelled', "
            "'escalated', 'reopened', 'transferred', 'closed')",
            name="ck_ticket_events_type",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_ticket_events_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_events"),
    )
    op.create_index("ix_ticket_events_ticket", "ticket_events", ["ticket_id", "at"])


def downgrade() -> None:
    op.drop_table("ticket_events")
    op.drop_table("tickets")
    op.drop_table("counters")
    op.drop_table("residents")
    op.drop_table("grid_buildings")
    op.drop_table("grids")
    op.drop_table("workers")
    op.drop_table("communities")
    op.drop_table("streets")
