"""Create the pools and Variables the sync DAG needs, leaving existing ones unchanged.

Run by ``deploy/airflow-init.sh`` after ``airflow db migrate``, with the same Airflow
configuration as the other components (it writes to the metadata database directly)::

    python deploy/bootstrap_airflow.py

Pools come from ``deploy/pools.json`` (the format of ``airflow pools import``). Variable
defaults are ``cerkl_organization_id`` = ``001C000001aTtMa`` and ``cerkl_sync_config`` = the
output of ``python -m include.cerkl_sync.config --print-defaults``. A pool or Variable that
already exists in the metadata database keeps the operator's value.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

POOLS_FILE = Path(__file__).with_name("pools.json")
DEFAULT_ORGANIZATION_ID = "001C000001aTtMa"


def load_pools(path: Path) -> dict[str, dict]:
    """Read a pools file in the ``airflow pools import`` format.

    :param path: JSON file that maps each pool name to ``slots``, ``description`` and
        optionally ``include_deferred``.
    :return: the mapping, validated.
    :raises ValueError: if the file is not such a mapping or a pool has no positive slots.
    """
    pools = json.loads(path.read_text())
    if not isinstance(pools, dict):
        raise ValueError(f"invalid pools file {path}: expected a JSON object of pool names")
    for name, spec in pools.items():
        slots = spec.get("slots") if isinstance(spec, dict) else None
        if not isinstance(slots, int) or slots < 1:
            raise ValueError(
                f"invalid pool {name!r} in {path}: 'slots' must be a positive integer, "
                f"got {slots!r}"
            )
    return pools


def ensure_pool(name: str, slots: int, description: str, include_deferred: bool) -> bool:
    """Create a pool unless one of that name exists.

    :return: True if the pool was created, False if it existed and was left unchanged.
    """
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        if Pool.get_pool(name, session=session) is not None:
            return False
        Pool.create_or_update_pool(name, slots, description, include_deferred, session=session)
    return True


def ensure_variable(key: str, value: str) -> bool:
    """Store a Variable in the metadata database unless the key is there already.

    Only the metadata database is checked, because a value from ``AIRFLOW_VAR_*`` or a
    secrets backend takes precedence over it at read time anyway.

    :return: True if the Variable was created, False if it existed and was left unchanged.
    """
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        existing = session.scalar(select(Variable.id).where(Variable.key == key))
        if existing is not None:
            return False
        Variable.set(key, value, session=session)
    return True


def default_sync_config() -> str:
    """Return the default ``cerkl_sync_config`` JSON from the config module's CLI.

    :raises subprocess.CalledProcessError: if the command fails.
    """
    completed = subprocess.run(
        [sys.executable, "-m", "include.cerkl_sync.config", "--print-defaults"],
        check=True,
        capture_output=True,
        text=True,
    )
    return completed.stdout.strip()


def main() -> int:
    """Create the missing pools and Variables, logging what was created or kept."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    for name, spec in load_pools(POOLS_FILE).items():
        created = ensure_pool(
            name,
            spec["slots"],
            spec.get("description", ""),
            bool(spec.get("include_deferred", False)),
        )
        log.info("Pool %s %s", name, "created" if created else "exists, left unchanged")

    variables = {
        "cerkl_organization_id": DEFAULT_ORGANIZATION_ID,
        "cerkl_sync_config": default_sync_config(),
    }
    for key, value in variables.items():
        created = ensure_variable(key, value)
        log.info("Variable %s %s", key, "created" if created else "exists, left unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
