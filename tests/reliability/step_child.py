"""Run one sync step in a child process, for the kill tests.

The children come from a ``forkserver`` that imported Airflow and the sync once, so each
child starts in milliseconds instead of the seconds an Airflow import takes, and none
inherits the test process's threads. The link lock's SQLite lease is cut to 2 seconds in
the child, so that a child started after a killed one takes the lock over in seconds
instead of a minute.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

LEASE_SECONDS = 2.0
RENEW_SECONDS = 0.5
PRELOAD = [
    "cerkl.hooks",
    "include.cerkl_sync.flows.campaigns",
    "include.cerkl_sync.flows.contacts",
    "include.cerkl_sync.flows.run",
    "include.cerkl_sync.flows.subscribers",
    "include.cerkl_sync.salesforce_io",
    "include.cerkl_sync.state",
    "airflow.sdk",
    "tests.reliability.helpers",
]

_context: Any = None


def run_step_in_child(work: str, environ: dict[str, str]) -> None:
    """Run the step described in ``work/input.json`` and write its output to ``output.json``.

    :param work: folder with ``input.json`` (``run``, ``step``, ``arguments``); the child's
        log goes to ``child.log`` there.
    :param environ: the environment to run with (connections, batch storage).
    """
    from include.cerkl_sync.flows.common import RunInfo
    from include.cerkl_sync.state import store
    from tests.reliability.helpers import build_clients, run_step

    os.environ.clear()
    os.environ.update(environ)
    store.LOCK_LEASE_SECONDS = LEASE_SECONDS
    store.LOCK_RENEW_SECONDS = RENEW_SECONDS
    folder = Path(work)
    handler = logging.FileHandler(folder / "child.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)

    request = json.loads((folder / "input.json").read_text(encoding="utf-8"))
    run = RunInfo.from_dict(request["run"])
    clients = build_clients(run)
    try:
        output = run_step(request["step"], run, request["arguments"], clients)
    finally:
        clients.close()
    (folder / "output.json").write_text(json.dumps(output, default=str), encoding="utf-8")


def start_step_child(work: Path, run: Any, step: str, arguments: dict[str, Any]) -> Any:
    """Start a child process that runs ``step`` of ``run`` with ``arguments``.

    :return: the started ``multiprocessing.Process``; its output is ``work / "output.json"``
        and its log ``work / "child.log"``.
    """
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    work.mkdir(parents=True, exist_ok=True)
    (work / "input.json").write_text(
        json.dumps({"run": run.to_dict(), "step": step, "arguments": arguments}),
        encoding="utf-8",
    )
    child = _context.Process(
        target=run_step_in_child, args=(str(work), dict(os.environ)), name=f"step-{step}"
    )
    child.start()
    return child
