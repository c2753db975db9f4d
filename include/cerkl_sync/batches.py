"""Changed-record batches passed between tasks through XCom.

A batch is a list of JSON-ready records, at most ``batch_size`` long. Small batches travel
inline in the XCom value. A batch whose JSON exceeds ``xcom_inline_max_bytes`` is written as a
file under the shared batch storage (``CERKL_SYNC_BATCH_STORAGE``, an ``ObjectStoragePath``
URL every worker can read) and only its reference goes through XCom, because XCom is stored
in the metadata DB and moved over the Task Execution API. The run's files are deleted when the
run ends: they hold personal data.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

log = logging.getLogger(__name__)

BATCH_STORAGE_ENV = "CERKL_SYNC_BATCH_STORAGE"

BatchRef = dict[str, Any]


def default_storage_url() -> str:
    """Return the batch storage URL from the environment, or a folder under ``AIRFLOW_HOME``."""
    url = os.environ.get(BATCH_STORAGE_ENV, "").strip()
    if url:
        return url
    home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
    return "file://" + os.path.join(os.path.abspath(home), "cerkl_sync_batches")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:200]


class BatchStore:
    """Writes and reads the batches of one DAG run.

    :param run_id: the DAG run id; the run's files live under a folder named after it.
    :param inline_max_bytes: batches up to this size stay inline in XCom.
    :param storage_url: base ``ObjectStoragePath`` URL; defaults to :func:`default_storage_url`.
    """

    def __init__(self, run_id: str, *, inline_max_bytes: int, storage_url: str | None = None):
        from airflow.sdk import ObjectStoragePath

        self.run_id = run_id
        self.inline_max_bytes = inline_max_bytes
        self.storage_url = storage_url or default_storage_url()
        if "://" not in self.storage_url:
            raise ValueError(
                f"{BATCH_STORAGE_ENV} is {self.storage_url!r}; set it to a URL such as "
                "file:///opt/airflow/shared/batches or s3://conn_id@bucket/batches."
            )
        self.run_folder = ObjectStoragePath(self.storage_url) / _safe(run_id)

    def put(self, records: Sequence[dict[str, Any]], *, label: str) -> BatchRef:
        """Store one batch and return its reference for XCom."""
        payload = json.dumps(list(records), ensure_ascii=False, separators=(",", ":"), default=str)
        encoded = payload.encode("utf-8")
        if len(encoded) <= self.inline_max_bytes:
            return {"count": len(records), "records": json.loads(payload)}
        self.run_folder.mkdir(parents=True, exist_ok=True)
        path = self.run_folder / f"{_safe(label)}-{uuid.uuid4().hex}.json.gz"
        with path.open("wb") as handle:
            handle.write(gzip.compress(encoded, compresslevel=3))
        log.info("Stored batch %s with %d records in shared storage", path.name, len(records))
        return {"count": len(records), "path": str(path)}

    def put_all(
        self, records: Iterable[dict[str, Any]], *, label: str, batch_size: int
    ) -> list[BatchRef]:
        """Split a record stream into batches of at most ``batch_size`` and store each one."""
        refs: list[BatchRef] = []
        chunk: list[dict[str, Any]] = []
        for record in records:
            chunk.append(record)
            if len(chunk) >= batch_size:
                refs.append(self.put(chunk, label=f"{label}-{len(refs)}"))
                chunk = []
        if chunk:
            refs.append(self.put(chunk, label=f"{label}-{len(refs)}"))
        return refs

    @staticmethod
    def get(ref: BatchRef) -> list[dict[str, Any]]:
        """Load the records of one batch reference."""
        from airflow.sdk import ObjectStoragePath

        if "records" in ref:
            return list(ref["records"])
        path = ObjectStoragePath(ref["path"])
        with path.open("rb") as handle:
            records = json.loads(gzip.decompress(handle.read()).decode("utf-8"))
        if len(records) != ref["count"]:
            raise ValueError(
                f"Batch file {path.name} contains {len(records)} records, but its reference "
                f"expects {ref['count']}; the file was changed or truncated. Clear the task "
                "to re-extract."
            )
        return records

    @classmethod
    def iter_records(cls, refs: Iterable[BatchRef]) -> Iterator[dict[str, Any]]:
        """Stream the records of several batches, one batch in memory at a time."""
        for ref in refs:
            yield from cls.get(ref)

    def purge(self) -> int:
        """Delete every batch file of the run; return how many were deleted."""
        if not self.run_folder.exists():
            return 0
        deleted = 0
        for path in list(self.run_folder.iterdir()):
            path.unlink()
            deleted += 1
        self.run_folder.rmdir()
        log.info("Deleted %d batch files of run %s", deleted, self.run_id)
        return deleted
