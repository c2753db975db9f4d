"""SQLAlchemy tables of the sync-state database.

The Alembic migrations in ``migrations/versions`` create these tables. A change here needs a
new migration, and ``SyncStateStore.check`` rejects a database that is not at the newest one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Salesforce Ids are 18 characters in API responses. Cerkl ids are integers.
SALESFORCE_ID_LENGTH = 18
FLOW_MAX_LENGTH = 64
RECORD_TYPE_MAX_LENGTH = 64
RECORD_ID_MAX_LENGTH = 64
REASON_MAX_LENGTH = 500
LOCK_OWNER_MAX_LENGTH = 200

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and returned as an aware ``datetime`` in UTC.

    PostgreSQL stores ``timestamptz``. SQLite has no time zone type, so the value is stored as
    naive UTC, which keeps string comparisons in SQL correct. Naive input raises ``ValueError``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"Timestamp {value.isoformat()} has no time zone. Pass an aware datetime, "
                "for example datetime.now(UTC)."
            )
        as_utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return as_utc.replace(tzinfo=None)
        return as_utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SyncWindow(Base):
    """The end of the last completed window of one flow."""

    __tablename__ = "sync_window"

    flow: Mapped[str] = mapped_column(String(FLOW_MAX_LENGTH), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class ContactLink(Base):
    """A link between one Salesforce Contact and one Cerkl subscriber (one-to-one)."""

    __tablename__ = "contact_link"

    contact_id: Mapped[str] = mapped_column(String(SALESFORCE_ID_LENGTH), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    # Field name -> sha256 hex digest of the value last synced. Values themselves are never stored.
    synced_values: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False)
    salesforce_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cerkl_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class CampaignSegmentLink(Base):
    """The Cerkl segment that mirrors one Salesforce Campaign."""

    __tablename__ = "segment_link"

    campaign_id: Mapped[str] = mapped_column(String(SALESFORCE_ID_LENGTH), primary_key=True)
    segment_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    in_scope: Mapped[bool] = mapped_column(Boolean, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class WorkItemRow(Base):
    """One open work item: a record that failed for a passing cause (pending) or that a run
    rejected (quarantined).

    A record has at most one open item per flow, so ``kind`` is not part of the unique key.
    """

    __tablename__ = "work_item"
    __table_args__ = (UniqueConstraint("flow", "record_type", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow: Mapped[str] = mapped_column(String(FLOW_MAX_LENGTH), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    record_type: Mapped[str] = mapped_column(String(RECORD_TYPE_MAX_LENGTH), nullable=False)
    record_id: Mapped[str] = mapped_column(String(RECORD_ID_MAX_LENGTH), nullable=False)
    reason: Mapped[str] = mapped_column(String(REASON_MAX_LENGTH), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SyncLock(Base):
    """The holder of a named cross-process lock.

    On SQLite this row is the lock itself and expires unless its holder renews it. On
    PostgreSQL an advisory lock excludes other sessions and this row only names the holder.
    """

    __tablename__ = "sync_lock"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(LOCK_OWNER_MAX_LENGTH), nullable=False)
    token: Mapped[str] = mapped_column(String(64), nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
