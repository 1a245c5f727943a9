"""The same fault reported by many: incidents linking tickets.

Revision ID: 0008_incidents
Revises: 0007_consultations
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_incidents"
down_revision = "0007_consultations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(32), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("building", sa.Integer(), nullable=False),
        sa.Column("window_hours", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name="fk_incidents_community_id_communities"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("incident_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_tickets_incident_id_incidents", "incidents", ["incident_id"], ["id"]
        )
        batch.create_index("ix_tickets_incident_id", ["incident_id"])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_incident_id")
        batch.drop_constraint("fk_tickets_incident_id_incidents", type_="foreignkey")
        batch.drop_column("incident_id")
    op.drop_table("incidents")
