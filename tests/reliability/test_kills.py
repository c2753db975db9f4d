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


def _kill_and_rerun(
    pipeline: helpers.Pipeline, step: str, controls: Any, kill_after: int, tmp_path: Path
) -> list[dict[str, Any]]:
    """Kill a child running ``step`` after ``kill_after`` writes, then rerun it in a new child."""
    arguments = pipeline.arguments(step)
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
        # The killed child held the link lock, so the rerun took it over once its lease ran out.
        assert "Took over the link lock" in log
    pipeline.outputs[step] = json.loads((tmp_path / "second" / "output.json").read_text())
    assert all(result["completed"] for result in pipeline.outputs[step])
    return pipeline.outputs[step]


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
def test_killed_step_rerun_no_duplicates(
    env, baseline, tmp_path, monkeypatch, step, system, kill_after
):
    connection = json.loads(os.environ["AIRFLOW_CONN_CERKL_DEFAULT"])
    connection["extra"] = {**connection["extra"], "create_batch_size": 1}
    monkeypatch.setenv("AIRFLOW_CONN_CERKL_DEFAULT", json.dumps(connection))
    pipeline = helpers.Pipeline(f"kill-{step}")
    pipeline.until(step)
    controls = getattr(env, system)
    env.reset_counters()
    _kill_and_rerun(pipeline, step, controls, kill_after, tmp_path)
    pipeline.rest()
    assert helpers.end_state(env) == baseline


def test_killed_unsubscribes_keep_opt_outs(env, baseline_day_two, tmp_path):
    helpers.Pipeline("day-one").rest()
    helpers.change_contacts_on_day_two(env)
    pipeline = helpers.Pipeline("kill-day-two", day=helpers.DAY_TWO, full_sync=False)
    pipeline.until("apply_contact_changes")
    env.reset_counters()

    results = _kill_and_rerun(pipeline, "apply_contact_changes", env.cerkl, 2, tmp_path)

    # Whether the first child's unsubscribes reached Cerkl or not, none is left undone or
    # quarantined, and each pair's link records the opt-out.
    counts = results[0]["counts"]
    assert counts.get("unsubscribed") == 3, counts
    assert results[0]["rejected"] == []
    pipeline.rest()
    assert helpers.end_state(env) == baseline_day_two
