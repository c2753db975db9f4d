"""Run one sync step in a fresh process, for the kill tests: ``python step_child.py WORK_DIR``.

Reads ``WORK_DIR/input.json`` (``run``, ``step``, ``arguments``) and writes the step's output
to ``WORK_DIR/output.json``. The link lock's SQLite lease is cut to 2 seconds, so that a
child started after a killed one takes the lock over in seconds instead of a minute.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

LEASE_SECONDS = 2.0
RENEW_SECONDS = 0.5


def main(work: Path) -> int:
    from include.cerkl_sync.flows.common import RunInfo
    from include.cerkl_sync.state import store
    from tests.reliability.helpers import build_clients, run_step

    store.LOCK_LEASE_SECONDS = LEASE_SECONDS
    store.LOCK_RENEW_SECONDS = RENEW_SECONDS
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    request = json.loads((work / "input.json").read_text(encoding="utf-8"))
    run = RunInfo.from_dict(request["run"])
    clients = build_clients(run)
    try:
        output = run_step(request["step"], run, request["arguments"], clients)
    finally:
        clients.close()
    (work / "output.json").write_text(json.dumps(output, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
