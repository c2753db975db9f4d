"""Write generated or loaded records into the sandbox stores of a data folder.

The stores are the files ``<data_dir>/salesforce.sqlite3`` and ``<data_dir>/cerkl.sqlite3``
that the running servers use. SQLite in WAL mode lets a seed run while the servers are up.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from include.sandbox.generator import CERKL_COLLECTIONS, SALESFORCE_OBJECTS, OrgSpec, generate_org

logger = logging.getLogger(__name__)

SALESFORCE_DB_NAME = "salesforce.sqlite3"
CERKL_DB_NAME = "cerkl.sqlite3"
# Records go to a store in chunks of this size, so one chunk at a time is held in memory.
INSERT_CHUNK_SIZE = 20_000

# Insert order: referenced records first. CampaignMembers come after Contacts and Leads
# because the store copies their Email and names onto each member row.
_SALESFORCE_ORDER = ("Account", "Campaign", "Contact", "Lead", "CampaignMember")
_CERKL_ORDER = ("categories", "subscribers", "unsubscribes", "interests", "segments")


def _chunks(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _open_salesforce_store(data_dir: Path) -> Any:
    from include.sandbox.controls import SandboxClock
    from include.sandbox.salesforce.store import SalesforceStore

    clock = SandboxClock(data_dir / "salesforce_clock.json")
    return SalesforceStore(data_dir / SALESFORCE_DB_NAME, clock.now)


def _open_cerkl_store(data_dir: Path) -> Any:
    from include.sandbox.cerkl.store import CerklStore
    from include.sandbox.controls import SandboxClock

    clock = SandboxClock(data_dir / "cerkl_clock.json")
    return CerklStore(data_dir / CERKL_DB_NAME, clock.now)


def _close(store: Any) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()
    else:
        store.connection.close()


def _insert_cerkl(store: Any, collection: str, chunk: list[dict[str, Any]]) -> int:
    if collection == "categories":
        return len(store.insert_categories(chunk))
    if collection == "subscribers":
        return len(store.insert_subscribers(chunk))
    if collection == "unsubscribes":
        return len(store.insert_unsubscribes(chunk))
    if collection == "interests":
        return store.insert_interests(chunk)
    return len(store.insert_segments(chunk))


def seed_records(
    data_dir: Path,
    *,
    salesforce: Mapping[str, Iterable[dict[str, Any]]] | None = None,
    cerkl: Mapping[str, Iterable[dict[str, Any]]] | None = None,
    reset: bool = False,
) -> dict[str, int]:
    """Insert records that the caller already has into the stores of a data folder.

    Records keep the Ids and timestamps they carry; the stores assign the missing ones.

    :param data_dir: the sandbox data folder; created when missing.
    :param salesforce: records per sObject (``{"Contact": [...], ...}``), in the shapes of
        ``SalesforceStore.insert_records``.
    :param cerkl: records per collection (``{"subscribers": [...], ...}``), in the shapes of
        the ``CerklStore.insert_*`` methods.
    :param reset: empty both stores first.
    :return: the number of records inserted per sObject and collection.
    :raises ValueError: for an sObject or collection name the sandbox does not model, or
        when a store rejects a record.
    """
    salesforce = salesforce or {}
    cerkl = cerkl or {}
    unknown = [name for name in salesforce if name not in SALESFORCE_OBJECTS]
    unknown += [name for name in cerkl if name not in CERKL_COLLECTIONS]
    if unknown:
        raise ValueError(
            f"cannot seed {', '.join(map(repr, unknown))}: the sandbox models the sObjects "
            f"{', '.join(SALESFORCE_OBJECTS)} and the Cerkl collections "
            f"{', '.join(CERKL_COLLECTIONS)}"
        )

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    started = time.monotonic()

    if salesforce or reset:
        store = _open_salesforce_store(data_dir)
        try:
            if reset:
                store.reset()
            for sobject in _SALESFORCE_ORDER:
                if sobject not in salesforce:
                    continue
                counts[sobject] = 0
                for chunk in _chunks(salesforce[sobject], INSERT_CHUNK_SIZE):
                    counts[sobject] += len(store.insert_records(sobject, chunk))
        finally:
            _close(store)

    if cerkl or reset:
        store = _open_cerkl_store(data_dir)
        try:
            if reset:
                store.reset()
            for collection in _CERKL_ORDER:
                if collection not in cerkl:
                    continue
                counts[collection] = 0
                for chunk in _chunks(cerkl[collection], INSERT_CHUNK_SIZE):
                    counts[collection] += _insert_cerkl(store, collection, chunk)
        finally:
            _close(store)

    logger.info(
        "Seeded %s in %.1f s",
        ", ".join(f"{count} {name}" for name, count in counts.items()) or "nothing",
        time.monotonic() - started,
    )
    return counts


def seed_data_dir(
    data_dir: Path, spec: OrgSpec | None = None, *, reset: bool = True
) -> dict[str, int]:
    """Generate an org and write it into both stores of a data folder.

    :param data_dir: the sandbox data folder; created when missing.
    :param spec: the org to generate; None means the defaults of ``OrgSpec``.
    :param reset: empty both stores first (the default). Without it, seeding into a folder
        that already contains this org fails on repeated Ids.
    :return: the number of records inserted per sObject and collection.
    :raises ValueError: for an invalid spec or when a store rejects a record.
    """
    org = generate_org(spec or OrgSpec())
    return seed_records(
        data_dir,
        salesforce={sobject: org.salesforce_records(sobject) for sobject in SALESFORCE_OBJECTS},
        cerkl={collection: org.cerkl_records(collection) for collection in CERKL_COLLECTIONS},
        reset=reset,
    )
