"""Sync-state database: windows, links, open work and the link lock (see ``store``)."""

from include.cerkl_sync.state.store import (
    DEFAULT_CONN_ID,
    Link,
    SegmentLink,
    StateSchemaOutdatedError,
    StateStoreError,
    StateStoreUnavailableError,
    SyncStateStore,
    WorkItem,
    value_digest,
)

__all__ = [
    "DEFAULT_CONN_ID",
    "Link",
    "SegmentLink",
    "StateSchemaOutdatedError",
    "StateStoreError",
    "StateStoreUnavailableError",
    "SyncStateStore",
    "WorkItem",
    "value_digest",
]
