"""The state DB unreachable when a task starts, or lost in the middle of an apply step.

At task start the task must fail with an error that names the connection, before it writes
to either system. Lost mid-step (a store that raises after its first writes), the step
must fail, and running it again with the store back must finish the work without
duplicates: the end state equals that of a run without faults.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from include.cerkl_sync.runtime import STATE_CONN_ID, task_clients
from include.cerkl_sync.state import StateStoreUnavailableError, SyncStateStore
from tests.reliability import helpers

pytestmark = [pytest.mark.timeout(120), pytest.mark.fault_scenario]

STATE_WRITE_METHODS = frozenset(
    {
        "add_work_items",
        "complete_window",
        "delete_links",
        "move_link",
        "resolve_work_items",
        "save_links",
        "save_segment_link",
    }
)


class FailingStateStore:
    """A state store that raises ``StateStoreUnavailableError`` on its n-th write call.

    Reads and the link lock pass through, so the step gets as far as its writes to the two
    systems before the state DB "goes away".
    """

    def __init__(self, store: SyncStateStore, *, method: str, fail_on_call: int) -> None:
        self._store = store
        self._method = method
        self._fail_on_call = fail_on_call
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name != self._method:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls >= self._fail_on_call:
                raise StateStoreUnavailableError(
                    f"Cannot connect to the state DB (test: {name} call {self.calls})"
                )
            return attribute(*args, **kwargs)

        return call


def _unreachable_connection(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'state.db'}"
    return json.dumps({"conn_type": "generic", "extra": {"url": url}})


def test_unreachable_state_db_fails_start(env, tmp_path, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{STATE_CONN_ID.upper()}", _unreachable_connection(tmp_path))
    env.reset_counters()

    with pytest.raises(StateStoreUnavailableError) as raised:
        helpers.prepare("state-down-start")

    message = str(raised.value)
    assert repr(STATE_CONN_ID) in message
    assert "missing-folder" in message
    assert env.salesforce.counters()["total"] == 0
    assert env.cerkl.counters()["total"] == 0


@pytest.mark.parametrize("step", helpers.APPLY_STEPS)
def test_unreachable_state_db_fails_apply_task(env, tmp_path, monkeypatch, step):
    pipeline = helpers.Pipeline(f"state-down-{step}")
    pipeline.until(step)
    monkeypatch.setenv(f"AIRFLOW_CONN_{STATE_CONN_ID.upper()}", _unreachable_connection(tmp_path))
    env.reset_counters()

    with pytest.raises(StateStoreUnavailableError, match=repr(STATE_CONN_ID)):
        with task_clients(pipeline.run.to_dict()) as clients:
            step_clients = helpers.StepClients(
                salesforce=clients.salesforce,
                cerkl=clients.cerkl,
                state=clients.state,
                batches=clients.batches,
            )
            helpers.run_step(step, pipeline.run, pipeline.arguments(step), step_clients)

    assert helpers.write_count(env.salesforce.counters()) == 0
    assert helpers.write_count(env.cerkl.counters()) == 0


@pytest.mark.parametrize(
    ("step", "method", "fail_on_call"),
    [
        ("link_new_subscribers", "save_links", 1),
        ("apply_unsubscribes", "save_links", 1),
        ("apply_contact_changes", "save_links", 1),
        # Two saves come before the writes: the extracted Contacts' scores and interests, then
        # the digests of the batch's unchanged subscribers. The third settles the updates.
        ("apply_subscriber_changes", "save_links", 3),
        ("sync_segments", "save_segment_link", 2),
    ],
)
def test_lost_state_db_retry_completes(env, baseline, step, method, fail_on_call):
    pipeline = helpers.Pipeline(f"state-lost-{step}")
    pipeline.until(step)
    env.reset_counters()
    store = SyncStateStore(env.state_url)
    failing = FailingStateStore(store, method=method, fail_on_call=fail_on_call)

    try:
        with pytest.raises(StateStoreUnavailableError):
            pipeline.step(step, state=failing)
    finally:
        store.dispose()
    # The step wrote to a system before the state DB went away.
    writes = helpers.write_count(env.salesforce.counters()) + helpers.write_count(
        env.cerkl.counters()
    )
    assert writes > 0
    assert failing.calls == fail_on_call

    pipeline.step(step)
    pipeline.rest()
    assert helpers.end_state(env) == baseline


def test_lost_state_db_keeps_unsubscribes(env, baseline_day_two):
    helpers.Pipeline("day-one").rest()
    helpers.change_contacts_on_day_two(env)
    pipeline = helpers.Pipeline("state-lost-day-two", day=helpers.DAY_TWO, full_sync=False)
    pipeline.until("apply_contact_changes")
    store = SyncStateStore(env.state_url)
    failing = FailingStateStore(store, method="save_links", fail_on_call=1)
    try:
        with pytest.raises(StateStoreUnavailableError):
            pipeline.step("apply_contact_changes", state=failing)
    finally:
        store.dispose()

    # The unsubscribes reached Cerkl, and the retry finds them done instead of rejecting them.
    result = pipeline.step("apply_contact_changes")
    counts = result[0]["counts"]
    assert counts.get("unsubscribed") == 3, counts
    assert result[0]["rejected"] == []
    pipeline.rest()
    assert helpers.end_state(env) == baseline_day_two
