"""Create the sync-state tables.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "sync_window",
        sa.Column("flow", sa.String(64), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("flow", name="pk_sync_window"),
    )
    op.create_table(
        "contact_link",
        sa.Column("contact_id", sa.String(18), nullable=False),
        sa.Column("subscriber_id", sa.BigInteger(), nullable=False),
        sa.Column("synced_values", sa.JSON(), nullable=False),
        sa.Column("salesforce_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cerkl_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", name="pk_contact_link"),
        sa.UniqueConstraint("subscriber_id", name="uq_contact_link_subscriber_id"),
    )
    op.create_table(
        "segment_link",
        sa.Column("campaign_id", sa.String(18), nullable=False),
        sa.Column("segment_id", sa.BigInteger(), nullable=False),
        sa.Column("in_scope", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name="pk_segment_link"),
    )
    op.create_table(
        "work_item",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("record_type", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_work_item"),
        sa.UniqueConstraint(
            "flow", "record_type", "record_id", name="uq_work_item_flow_record_type_record_id"
        ),
    )
    op.create_index("ix_work_item_kind", "work_item", ["kind"])
    op.create_table(
        "sync_lock",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sync_lock"),
    )


def downgrade() -> None:
    op.drop_table("sync_lock")
    op.drop_index("ix_work_item_kind", table_name="work_item")
    op.drop_table("work_item")
    op.drop_table("segment_link")
    op.drop_table("contact_link")
    op.drop_table("sync_window")
