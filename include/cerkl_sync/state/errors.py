"""Exceptions of the sync-state store."""

from __future__ import annotations


class StateStoreError(Exception):
    """An error of the sync-state store that the caller can act on."""


class StateStoreUnavailableError(StateStoreError):
    """The state DB cannot be reached or opened."""


class StateSchemaOutdatedError(StateStoreError):
    """The state DB is not migrated to the revision this code needs."""
