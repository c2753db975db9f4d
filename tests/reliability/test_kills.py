"""Apply steps killed with SIGKILL mid-write, then run again in a new process.

A child process runs the step (``step_child.py``, forked from a preloaded server) while the
sandbox delays every request by 300 ms. The test polls the sandbox counters and kills the
child once the sandbox has counted ``kill_after`` of its writes, so the kill lands while a
write is in flight and before the state DB has recorded it. A second child runs the step
with the same inputs, the remaining steps run, and both systems must equal the end state of
a run without faults: no Contact, subscriber or segment member twice, no update or opt-out
lost.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import helpers
from tests.reliability.step_child import start_step_child

pytestmark = [pytest.mark.timeout(180), pytest.mark.fault_scenario]

LATENCY_MS = 300
LINK_LOCK_STEPS = {"link_new_subscribers", "apply_unsubscribes", "apply_contact_changes"}


def _wait_for_writes(controls: Any, count: int, child: Any, log: Path) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        writes = helpers.write_count(controls.counters())
        if writes >= count:
            return writes
        if not child.is_alive():
            pytest.fail(
                f"the child ended with {child.exitcode} after {writes} writes, before the "
                f"kill point of {count}; its log:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.01)
    pytest.fail(f"the child made fewer than {count} writes in 60 s")


@pytest.mark.parametrize(
    ("step", "system", "kill_after"),
    [
        # The upsert that creates Contacts is done, the link update is in flight.
        ("link_new_subscribers", "salesforce", 2),
        ("apply_unsubscribes", "salesforce", 1),
        # Three of the creates (one subscriber a request) are done or in flight.
        ("apply_contact_changes", "cerkl", 3),
        ("apply_subscriber_changes", "salesforce", 1),
        # Segments created, some member adds in flight.
        ("sync_segments", "cerkl", 4),
    ],
)
def test_killed_step_rerun_leaves_no_duplicates(
    env, baseline, tmp_path, monkeypatch, step, system, kill_after
):
    connection = json.loads(os.environ["AIRFLOW_CONN_CERKL_DEFAULT"])
    connection["extra"] = {**connection["extra"], "create_batch_size": 1}
    monkeypatch.setenv("AIRFLOW_CONN_CERKL_DEFAULT", json.dumps(connection))
    pipeline = helpers.Pipeline(f"kill-{step}")
    pipeline.until(step)
    arguments = pipeline.arguments(step)
    controls = getattr(env, system)
    env.reset_counters()
    controls.set_latency(fixed_ms=LATENCY_MS)

    first = start_step_child(tmp_path / "first", pipeline.run, step, arguments)
    try:
        writes = _wait_for_writes(controls, kill_after, first, tmp_path / "first" / "child.log")
    finally:
        first.kill()
        first.join(timeout=30)
    controls.set_latency(0)
    assert writes >= kill_after
    assert first.exitcode == -9
    assert not (tmp_path / "first" / "output.json").exists()

    second = start_step_child(tmp_path / "second", pipeline.run, step, arguments)
    second.join(timeout=120)
    log = (tmp_path / "second" / "child.log").read_text()
    assert second.exitcode == 0, log[-3000:]
    if step in LINK_LOCK_STEPS:
        # The killed child held the link lock; its lease ran out and the rerun took it over.
        assert "Took over the link lock" in log
    pipeline.outputs[step] = json.loads((tmp_path / "second" / "output.json").read_text())
    assert all(result["completed"] for result in pipeline.outputs[step])

    pipeline.rest()
    assert helpers.end_state(env) == baseline
