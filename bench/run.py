"""Benchmark the daily sync against the sandbox: API calls, their minimum, wall time, memory.

Builds a scenario's world in a temporary folder (``bench.world``) and starts both sandbox
servers with 50 ms latency per request and a Cerkl rate limit of 20 requests per second.
Then it runs the DAG's tasks one by one, each in its own process (``bench.tasks``), and
prints a table and one last line for scripts::

    salesforce_calls=N minimum=M ratio=R cerkl_calls=C wall_s=W latency_bound_s=L peak_rss_mb=P

Run with ``make bench`` (the ``daily`` scenario) or ``make bench SCENARIO=smoke``, or
``.venv/bin/python -m bench.run --scenario daily --scale 0.2``. With ``--setup-only`` it
builds the world, prints the seconds of each setup step and stops before the tasks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.scenarios import Scenario

REPO = Path(__file__).resolve().parents[1]

LATENCY_MS = 50.0
CERKL_RATE = 20.0
CERKL_CONCURRENCY = 8
NOT_COUNTED = ("Soap", "oauth2", "describe")


@dataclass(frozen=True)
class RunSettings:
    """Sandbox latency and Cerkl limits of a run, and whether tasks get their own process."""

    latency_ms: float = LATENCY_MS
    cerkl_rate: float | None = CERKL_RATE
    isolate: bool = True
    #: Subscribers per Cerkl list request; None keeps the hook's default (1,000).
    cerkl_page_size: int | None = None
    #: Polls for which each Bulk API 2.0 job returns ``InProgress``, so that a job costs this
    #: many polls plus one. With 0 the sandbox runs a job when it is closed and no poll is
    #: sent, while Salesforce runs a job after its close and needs at least one poll.
    bulk_polls: int = 0
    #: ``cerkl_sync_config`` settings over the defaults, such as a smaller ``batch_size``.
    sync_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchResult:
    """Figures of one benchmark run."""

    scenario: str
    scale: float
    settings: RunSettings = field(default_factory=RunSettings)
    seed_seconds: float = 0.0
    #: Seconds per setup step, in the order the steps ran. Keys ``changes: <group>`` time
    #: the groups of the day's changes.
    setup_seconds: dict[str, float] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    salesforce_by_endpoint: Counter[str] = field(default_factory=Counter)
    cerkl_by_endpoint: Counter[str] = field(default_factory=Counter)
    minimum_by_task: dict[str, int] = field(default_factory=dict)
    #: The minimum with REST writes only (sObject Collections), no Bulk API 2.0 job.
    rest_minimum_by_task: dict[str, int] = field(default_factory=dict)
    sandbox_ms: dict[str, float] = field(default_factory=dict)
    idle_rss_mb: float = 0.0
    records: dict[str, Any] = field(default_factory=dict)
    plain: dict[str, float] = field(default_factory=dict)

    @property
    def salesforce_calls(self) -> int:
        """Salesforce calls without logins and describes, the calls the minimum counts."""
        return sum(
            count
            for key, count in self.salesforce_by_endpoint.items()
            if not any(part in key for part in NOT_COUNTED)
        )

    @property
    def salesforce_calls_all(self) -> int:
        return sum(self.salesforce_by_endpoint.values())

    @property
    def cerkl_calls(self) -> int:
        return sum(self.cerkl_by_endpoint.values())

    @property
    def minimum(self) -> int:
        return sum(self.minimum_by_task.values())

    @property
    def wall_seconds(self) -> float:
        return sum(task["seconds"] for task in self.tasks)

    @property
    def latency_bound_seconds(self) -> float:
        from bench.minimum import latency_bound_seconds

        return latency_bound_seconds(
            salesforce_calls=self.salesforce_calls_all,
            cerkl_calls=self.cerkl_calls,
            latency_seconds=self.settings.latency_ms / 1000,
            cerkl_concurrency=CERKL_CONCURRENCY,
            cerkl_rate=self.settings.cerkl_rate or math.inf,
        )

    @property
    def peak_rss_mb(self) -> float:
        return max((task["peak_rss_mb"] for task in self.tasks), default=0.0)

    def summary_line(self) -> str:
        ratio = self.salesforce_calls / self.minimum if self.minimum else float("nan")
        return (
            f"salesforce_calls={self.salesforce_calls} minimum={self.minimum} ratio={ratio:.2f} "
            f"cerkl_calls={self.cerkl_calls} wall_s={self.wall_seconds:.1f} "
            f"latency_bound_s={self.latency_bound_seconds:.1f} peak_rss_mb={self.peak_rss_mb:.0f}"
        )


def _prepare_environment(work_dir: Path) -> None:
    if "airflow" not in sys.modules:
        # Airflow reads its home once, on first import; the benchmark needs no metadata DB.
        airflow_home = work_dir / "airflow"
        airflow_home.mkdir(parents=True, exist_ok=True)
        os.environ["AIRFLOW_HOME"] = str(airflow_home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    for path in (str(REPO), str(REPO / "plugins"), str(REPO / "dags")):
        if path not in sys.path:
            sys.path.insert(0, path)
    # Children started with ``spawn`` import the project from the same paths.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(REPO / "plugins"), str(REPO / "dags")]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )


def _time_sandbox_requests(salesforce: Any, cerkl_url: str, subscriber_id: int) -> dict[str, float]:
    """Return the median milliseconds of a small request to each server, without latency.

    Cerkl is timed with plain ``requests`` calls, because the hook spaces its requests to its
    rate budget.
    """
    import requests

    from include.sandbox.local_airflow import CERKL_CLIENT_ID, CERKL_CLIENT_SECRET

    timings: dict[str, float] = {}
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        list(salesforce.iter_query_pages("SELECT Id FROM Contact LIMIT 1"))
        samples.append((time.perf_counter() - started) * 1000)
    timings["salesforce_query_ms"] = round(statistics.median(samples), 1)
    with requests.Session() as session:
        token = session.post(
            f"{cerkl_url}/oauth/Token",
            data={"grant_type": "client_credentials"},
            auth=(CERKL_CLIENT_ID, CERKL_CLIENT_SECRET),
            timeout=30,
        ).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        samples = []
        for _ in range(20):
            started = time.perf_counter()
            session.get(f"{cerkl_url}/subscriber/{subscriber_id}", timeout=30).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    timings["cerkl_get_subscriber_ms"] = round(statistics.median(samples), 1)
    return timings


def _minimum_for_task(work: dict[str, Any], *, bulk: bool = True) -> int:
    """Return the fewest Salesforce calls for the work a task did, by the rules of the page.

    Window queries count by rows, look-ups by their keys, and writes by their records, per
    kind of write. Look-ups by Id or by subscriber id count as not needed, because the
    window's Contact extract and the state DB hold that data.

    :param bulk: count a Bulk API 2.0 job for a write where it is cheaper than REST.
    """
    from bench.minimum import lookup_calls, query_calls, write_calls
    from include.cerkl_sync.salesforce_io.soql import split_template

    total = 0
    for query in work["queries"]:
        total += query_calls(query["rows"])
    for lookup in work["lookups"]:
        head, tail = split_template(lookup["template"])
        if re.search(r"\b(Id|Cerkl_Subscriber_Id__c) IN $", head.rstrip() + " "):
            continue
        calls = lookup_calls(
            lookup["keys"],
            uri_prefix=lookup["uri_prefix"],
            soql_head=head + "(",
            soql_tail=")" + tail,
        )
        total += max(calls, math.ceil(lookup["rows"] / 2000))
    rows: Counter[tuple[str, str]] = Counter()
    for write in work["writes"]:
        rows[(write["kind"], write["sobject"])] += write["rows"]
    for count in rows.values():
        total += write_calls(count, bulk=bulk)
    return total


def _plain_client_figures(result: BenchResult) -> dict[str, float]:
    """Return the calls and time the same run takes with one Salesforce call per record.

    A plain client pages the window queries as the sync does, but sends one SOQL query per
    looked-up key and one write per record. Cerkl calls stay as measured, and the time is
    the latency-bound minimum of those calls.
    """
    from bench.minimum import latency_bound_seconds, query_calls

    calls = 0
    for task in result.tasks:
        work = task.get("work") or {}
        calls += sum(query_calls(query["rows"]) for query in work.get("queries", []))
        calls += sum(lookup["keys"] for lookup in work.get("lookups", []))
        calls += sum(write["rows"] for write in work.get("writes", []))
    seconds = latency_bound_seconds(
        salesforce_calls=calls,
        cerkl_calls=result.cerkl_calls,
        latency_seconds=result.settings.latency_ms / 1000,
        cerkl_concurrency=CERKL_CONCURRENCY,
        cerkl_rate=result.settings.cerkl_rate or math.inf,
    )
    return {"salesforce_calls": calls, "latency_bound_s": seconds}


def run_benchmark(
    scenario_name: str | Scenario,
    *,
    scale: float = 1.0,
    work_dir: Path | None = None,
    latency_ms: float = LATENCY_MS,
    cerkl_rate: float | None = CERKL_RATE,
    isolate: bool = True,
    cerkl_page_size: int | None = None,
    bulk_polls: int = 0,
    setup_only: bool = False,
    sync_config: dict[str, Any] | None = None,
) -> BenchResult:
    """Build the scenario, run every task in its own process and return the figures.

    :param scenario_name: ``smoke``, ``daily``, ``first-sync`` or a :class:`Scenario`.
    :param scale: factor applied to every count of the scenario.
    :param latency_ms: sandbox latency per request on both servers.
    :param cerkl_rate: sandbox rate limit on Cerkl and the hook's ``requests_per_second``, in
        requests per second; None for no limit (the hook then sends up to 1,000 a second).
    :param isolate: run each task in its own process; False runs them in this process,
        which saves the interpreter starts but measures no per-task memory.
    :param cerkl_page_size: subscribers per Cerkl list request; None for the hook's default.
    :param bulk_polls: polls for which each Bulk API 2.0 job returns ``InProgress``, so a job
        costs ``bulk_polls + 1`` polls. With 0 a job runs when it is closed and no poll is sent.
    :param sync_config: ``cerkl_sync_config`` settings for the run, such as a smaller
        ``batch_size`` in tests.
    :param setup_only: stop after the setup (seed, state DB, the day's changes and the
        counter reset) and run no task; the result then contains the setup figures only.
    :param work_dir: folder for the sandbox stores, the state DB and batch files; a temporary
        folder (deleted afterwards) when None.
    :raises ValueError: for an unknown scenario or an invalid scale.
    :raises RuntimeError: when a task fails.
    """
    from bench.scenarios import SCENARIOS

    if isinstance(scenario_name, Scenario):
        scenario = scenario_name.scaled(scale)
    elif scenario_name in SCENARIOS:
        scenario = SCENARIOS[scenario_name].scaled(scale)
    else:
        raise ValueError(
            f"unknown scenario {scenario_name!r}: expected one of {', '.join(SCENARIOS)}"
        )
    temporary = work_dir is None
    work_dir = Path(tempfile.mkdtemp(prefix="cerkl-bench-")) if work_dir is None else work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        settings = RunSettings(
            latency_ms=latency_ms,
            cerkl_rate=cerkl_rate,
            isolate=isolate,
            cerkl_page_size=cerkl_page_size,
            bulk_polls=bulk_polls,
            sync_config=dict(sync_config or {}),
        )
        return _run(scenario, scale, work_dir, settings, setup_only=setup_only)
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)


def _run(
    scenario: Any, scale: float, work_dir: Path, settings: RunSettings, *, setup_only: bool
) -> BenchResult:
    _prepare_environment(work_dir)
    from bench import world
    from bench.tasks import TASK_ORDER, run_task_in_child, run_task_in_process
    from include.cerkl_sync.config import load_config_from_environment
    from include.sandbox.client import SandboxControlClient
    from include.sandbox.local_airflow import configure_environment
    from include.sandbox.runner import start_sandbox

    result = BenchResult(scenario=scenario.name, scale=scale, settings=settings)
    run_task = run_task_in_child if settings.isolate else run_task_in_process
    sandbox_dir = work_dir / "sandbox"
    started = time.perf_counter()
    counts, population = world.seed_org(sandbox_dir, scenario)
    result.seed_seconds = time.perf_counter() - started
    result.setup_seconds["seed"] = round(result.seed_seconds, 1)
    result.records["seeded"] = counts
    state_url = f"sqlite:///{work_dir / 'state.db'}"

    cerkl_extra: dict[str, Any] = {
        "requests_per_second": settings.cerkl_rate or 1000,
        "max_concurrent_requests": CERKL_CONCURRENCY,
    }
    if settings.cerkl_page_size is not None:
        cerkl_extra["page_size"] = settings.cerkl_page_size
    started = time.perf_counter()
    with start_sandbox(sandbox_dir) as sandbox:
        result.setup_seconds["start sandbox"] = round(time.perf_counter() - started, 1)
        configure_environment(
            salesforce_url=sandbox.salesforce_url,
            cerkl_url=sandbox.cerkl_url,
            state_url=state_url,
            work_dir=work_dir,
            config={"cerkl_workers": CERKL_CONCURRENCY, **settings.sync_config},
            cerkl_extra=cerkl_extra,
        )
        config = load_config_from_environment()
        started = time.perf_counter()
        result.records["links_seeded"] = world.seed_state(state_url, scenario, config)
        result.setup_seconds["state DB"] = round(time.perf_counter() - started, 1)
        salesforce_controls = SandboxControlClient(sandbox.salesforce_url)
        cerkl_controls = SandboxControlClient(sandbox.cerkl_root_url)
        controls = (salesforce_controls, cerkl_controls)
        try:
            _make_changes(scenario, population, controls, result, sandbox.cerkl_url)
            for client in controls:
                client.set_clock(world.RUN_AT)
                client.set_latency(fixed_ms=settings.latency_ms)
                client.reset_counters()
            cerkl_controls.set_rate_limit(settings.cerkl_rate)
            if settings.bulk_polls:
                salesforce_controls.request(
                    "PUT", "/__sandbox__/bulk_ingest", {"in_progress_polls": settings.bulk_polls}
                )
            if setup_only:
                # Read back after the reset, so the report shows that setup requests are not
                # counted as the sync's.
                result.records["calls_after_setup"] = {
                    "salesforce": salesforce_controls.counters()["total"],
                    "cerkl": cerkl_controls.counters()["total"],
                }
                return result

            params = {
                "run_id": f"bench__{scenario.name}",
                "interval_start": world.DAY_START.isoformat(),
                "interval_end": world.DAY_END.isoformat(),
                "now": world.RUN_AT.isoformat(),
                "full_sync": scenario.full_sync,
            }
            result.idle_rss_mb = run_task("idle", params, {})["peak_rss_mb"]
            outputs: dict[str, Any] = {}
            for name, upstream in TASK_ORDER:
                measured = run_task(name, params, {u: outputs[u] for u in upstream})
                outputs[name] = measured["output"]
                calls = measured["api_calls"]
                measured["salesforce_calls"] = calls.get("salesforce", {}).get("total", 0)
                measured["cerkl_calls"] = calls.get("cerkl", {}).get("total", 0)
                result.minimum_by_task[name] = _minimum_for_task(measured["work"])
                result.rest_minimum_by_task[name] = _minimum_for_task(measured["work"], bulk=False)
                for lookup in measured["work"]["lookups"]:
                    # Only the count is kept: the keys are email addresses.
                    lookup["keys"] = len(lookup["keys"])
                measured["name"] = name
                measured.pop("output")
                result.tasks.append(measured)
                print(
                    f"  {name}: {measured['seconds']:.1f} s, Salesforce "
                    f"{measured['salesforce_calls']}, Cerkl {measured['cerkl_calls']}",
                    file=sys.stderr,
                )
            result.salesforce_by_endpoint = Counter(salesforce_controls.counters()["by_endpoint"])
            result.cerkl_by_endpoint = Counter(cerkl_controls.counters()["by_endpoint"])
            result.records["flows"] = _flow_records(outputs)
        finally:
            for client in controls:
                client.close()
    result.plain = _plain_client_figures(result)
    return result


def _make_changes(
    scenario: Any, population: Any, controls: tuple, result: BenchResult, cerkl_url: str
) -> None:
    from cerkl.hooks import CerklHook

    from bench import world
    from include.cerkl_sync.salesforce_io import SalesforceClient

    salesforce_controls, cerkl_controls = controls
    for client in controls:
        client.set_clock(world.CHANGES_AT)
    salesforce = SalesforceClient("salesforce_default")
    cerkl = CerklHook(cerkl_conn_id="cerkl_default")
    try:
        if population.linked:
            started = time.perf_counter()
            result.sandbox_ms = _time_sandbox_requests(
                salesforce, cerkl_url, population.linked[0][1]
            )
            result.setup_seconds["request timing"] = round(time.perf_counter() - started, 1)
        if not scenario.full_sync:
            started = time.perf_counter()
            timings: dict[str, float] = {}
            result.changes = world.apply_day_changes(
                scenario,
                population,
                salesforce=salesforce,
                cerkl=cerkl,
                controls=cerkl_controls,
                timings=timings,
            )
            result.records["changes_seconds"] = round(time.perf_counter() - started, 1)
            for group, seconds in timings.items():
                result.setup_seconds[f"changes: {group}"] = seconds
    finally:
        cerkl.close()


def _flow_records(outputs: dict[str, Any]) -> dict[str, Any]:
    records: dict[str, Any] = {}
    if outputs.get("extract_contacts"):
        records["contacts_extracted"] = outputs["extract_contacts"]["count"]
    if outputs.get("extract_subscriber_changes"):
        records.update(
            {
                f"subscribers_{k}": v
                for k, v in outputs["extract_subscriber_changes"]["counts"].items()
            }
        )
    if outputs.get("extract_campaigns") is not None:
        records["campaigns"] = len(outputs["extract_campaigns"])
    for output in outputs.values():
        if isinstance(output, dict) and "flows" in output:
            for flow, data in output["flows"].items():
                records[flow] = {"records": data["records"], **data["counts"]}
    return records


def format_setup_report(result: BenchResult) -> str:
    """Return the setup's steps with their seconds, ending with a line for scripts."""
    lines = [f"Setup of scenario {result.scenario} (scale {result.scale:g})"]
    lines.append(f"Seeded {result.records.get('seeded')}")
    lines.append(f"Links in the state DB: {result.records.get('links_seeded')}")
    lines.append(f"Day's changes: {result.changes}")
    lines.append("")
    for step, seconds in result.setup_seconds.items():
        lines.append(f"  {step:28} {seconds:8.1f} s")
    calls = result.records.get("calls_after_setup")
    if calls is not None:
        lines.append(
            f"Requests counted after the counter reset: Salesforce {calls['salesforce']}, "
            f"Cerkl {calls['cerkl']}"
        )
    total = sum(
        seconds for step, seconds in result.setup_seconds.items() if not step.startswith("changes:")
    )
    lines.append(
        f"setup_s={total + result.records.get('changes_seconds', 0):.1f} "
        f"seed_s={result.setup_seconds.get('seed', 0):.1f} "
        f"changes_s={result.records.get('changes_seconds', 0):.1f}"
    )
    return "\n".join(lines)


def format_report(result: BenchResult) -> str:
    """Return the human-readable table of a run, ending with the line for scripts."""
    lines = [f"Scenario {result.scenario} (scale {result.scale:g})"]

    lines.append(f"Seeded {result.records.get('seeded')} in {result.seed_seconds:.1f} s")
    lines.append(f"Day's changes: {result.changes}")
    lines.append(
        "Setup seconds: "
        + ", ".join(f"{step} {seconds:.1f}" for step, seconds in result.setup_seconds.items())
    )
    lines.append("")
    lines.append("Records per flow:")
    for name, value in result.records.get("flows", {}).items():
        lines.append(f"  {name}: {value}")
    lines.append("")
    header = (
        f"{'task':28} {'seconds':>8} {'SF calls':>9} {'SF min':>7} {'REST min':>8} "
        f"{'Cerkl':>7} {'RSS MB':>7}"
    )
    lines.append(header)
    for task in result.tasks:
        lines.append(
            f"{task['name']:28} {task['seconds']:8.1f} {task['salesforce_calls']:9d} "
            f"{result.minimum_by_task[task['name']]:7d} "
            f"{result.rest_minimum_by_task[task['name']]:8d} {task['cerkl_calls']:7d} "
            f"{task['peak_rss_mb']:7.0f}"
        )
    lines.append(f"Idle task process (imports only): {result.idle_rss_mb:.0f} MB peak RSS")

    lines.append("")
    lines.append("API calls per endpoint:")
    for system, counter in (
        ("salesforce", result.salesforce_by_endpoint),
        ("cerkl", result.cerkl_by_endpoint),
    ):
        for key, count in sorted(counter.items()):
            lines.append(f"  {system:10} {count:7d}  {key}")

    lines.append("")
    ratio = result.salesforce_calls / result.minimum if result.minimum else float("nan")
    lines.append(
        f"Salesforce calls {result.salesforce_calls} (with logins and describes "
        f"{result.salesforce_calls_all}), minimum {result.minimum}, ratio {ratio:.2f}; "
        f"minimum with REST writes only {sum(result.rest_minimum_by_task.values())}, ratio "
        f"{result.salesforce_calls / max(sum(result.rest_minimum_by_task.values()), 1):.2f}"
    )
    lines.append(
        f"Wall time {result.wall_seconds:.1f} s (task work, imports excluded; with process "
        f"start {sum(t['process_seconds'] for t in result.tasks):.1f} s), latency-bound "
        f"minimum {result.latency_bound_seconds:.1f} s, ratio "
        f"{result.wall_seconds / max(result.latency_bound_seconds, 1e-9):.2f}"
    )
    lines.append(f"Sandbox time per request without latency: {result.sandbox_ms}")
    if result.plain:
        lines.append(
            f"One call per record: {result.plain['salesforce_calls']:.0f} Salesforce calls "
            f"({result.plain['salesforce_calls'] / max(result.salesforce_calls, 1):.0f}x), "
            f"latency-bound {result.plain['latency_bound_s']:.0f} s "
            f"({result.plain['latency_bound_s'] / max(result.wall_seconds, 1e-9):.1f}x the "
            "measured wall time)"
        )
    lines.append(result.summary_line())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="daily", choices=sorted(SCENARIOS))
    parser.add_argument(
        "--scale", type=float, default=1.0, help="factor applied to every count of the scenario"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=LATENCY_MS,
        help="sandbox latency per request on both servers, in milliseconds",
    )
    parser.add_argument(
        "--cerkl-rate",
        type=float,
        default=CERKL_RATE,
        help="Cerkl rate limit in requests per second; 0 for none",
    )
    parser.add_argument(
        "--bulk-polls",
        type=int,
        default=0,
        help="polls for which each Bulk API 2.0 job returns InProgress, so a job costs this "
        "many polls plus one; with 0 (the default) a job runs when it is closed and no poll "
        "is sent",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the tasks in this process (faster start, no per-task memory figures)",
    )
    parser.add_argument(
        "--setup-only",
        action="store_true",
        help="build the scenario (seed, state DB, the day's changes), print the seconds of "
        "each setup step and run no task",
    )
    args = parser.parse_args(argv)
    result = run_benchmark(
        args.scenario,
        scale=args.scale,
        latency_ms=args.latency_ms,
        cerkl_rate=args.cerkl_rate or None,
        isolate=not args.in_process,
        bulk_polls=args.bulk_polls,
        setup_only=args.setup_only,
    )
    print(format_setup_report(result) if args.setup_only else format_report(result))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "scenario": result.scenario,
                    "scale": result.scale,
                    "tasks": result.tasks,
                    "salesforce_by_endpoint": result.salesforce_by_endpoint,
                    "cerkl_by_endpoint": result.cerkl_by_endpoint,
                    "minimum_by_task": result.minimum_by_task,
                    "rest_minimum_by_task": result.rest_minimum_by_task,
                    "records": result.records,
                    "setup_seconds": result.setup_seconds,
                    "summary": result.summary_line(),
                },
                indent=2,
                default=str,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
