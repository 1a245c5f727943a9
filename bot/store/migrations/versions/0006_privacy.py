"""Privacy: API key scopes, a ticket's published summary, staff access records.

Revision ID: 0006_privacy
Revises: 0005_ticket_photos
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_privacy"
down_revision = "0005_ticket_photos"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keys made before scopes existed were for posting (Open311 POST) only.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(64), nullable=False, server_default="write"))
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("public_summary", sa.Text(), nullable=True))
    op.create_table(
        "access_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("actor_name", sa.String(100), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_access_records"),
    )
    op.create_index("ix_access_records_at", "access_records", ["at"])
    op.create_index("ix_access_records_actor", "access_records", ["actor", "at"])
    op.create_index("ix_access_records_action", "access_records", ["action", "at"])


def downgrade() -> None:
    op.drop_index("ix_access_records_action", table_name="access_records")
    op.drop_index("ix_access_records_actor", table_name="access_records")
    op.drop_index("ix_access_records_at", table_name="access_records")
    op.drop_table("access_records")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("public_summary")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
