"""The benchmark's setup on its own: step timings, and counters that start at zero for the sync."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from bench.run import main, run_benchmark
from bench.scenarios import Scenario

pytestmark = pytest.mark.timeout(300)

SCENARIO = Scenario(
    name="setup",
    contacts=300,
    subscribers=200,
    new_contacts=5,
    renamed_contacts=5,
    new_subscribers_one_match=3,
    new_subscribers_no_match=3,
    unsubscribes=2,
    renamed_subscribers=4,
    campaigns=2,
    campaign_members=60,
    joined_members=6,
    left_members=4,
)


@pytest.fixture
def clean_environment() -> Iterator[None]:
    """Restore the environment variables that the benchmark points at its own sandbox."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_setup_only_counts_no_requests(tmp_path, clean_environment):
    result = run_benchmark(SCENARIO, work_dir=tmp_path, latency_ms=0, setup_only=True)
    assert result.tasks == []
    assert result.changes["joined_members"] == 6
    assert result.changes["left_members"] == 4
    # Cerkl may reject a generated address (an unsubscribed one), so not all 6 are created.
    assert result.changes["new_subscribers"] > 0
    # The day's changes went through both sandboxes, and the reset cleared their counts.
    assert result.records["calls_after_setup"] == {"salesforce": 0, "cerkl": 0}


def test_setup_only_times_each_step(tmp_path, clean_environment):
    result = run_benchmark(SCENARIO, work_dir=tmp_path, latency_ms=0, setup_only=True)
    steps = list(result.setup_seconds)
    assert steps[:4] == ["seed", "start sandbox", "state DB", "request timing"]
    assert "changes: contacts" in steps
    assert "changes: campaign_members" in steps
    assert all(seconds >= 0 for seconds in result.setup_seconds.values())


def test_setup_only_option_prints_steps(tmp_path, clean_environment, capsys, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert main(["--scenario", "smoke", "--latency-ms", "0", "--setup-only"]) == 0
    output = capsys.readouterr().out
    assert re.search(r"^  changes: campaign_members +\d+\.\d s$", output, re.MULTILINE)
    assert "Requests counted after the counter reset: Salesforce 0, Cerkl 0" in output
    last = output.strip().splitlines()[-1]
    assert re.fullmatch(r"setup_s=[\d.]+ seed_s=[\d.]+ changes_s=[\d.]+", last), last
