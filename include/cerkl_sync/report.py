"""The run report: one JSON file per DAG run, validated against ``report.schema.json``.

The report contains ids, counts and reason codes, never an email address or a name. It is
written by the DAG's last task, which runs whatever happened before it, so a failed run has a
report too.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.cerkl_sync.config import FLOWS

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
REPORT_VERSION = 1


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_report(report: Mapping[str, Any]) -> None:
    """Validate a report against the schema.

    :raises jsonschema.ValidationError: naming the first field that does not conform.
    """
    import jsonschema

    jsonschema.validate(instance=report, schema=load_schema())


def _merge_calls(total: dict[str, dict[str, Any]], calls: Mapping[str, Any]) -> None:
    for system in ("salesforce", "cerkl"):
        entry = calls.get(system) or {}
        by_endpoint: Counter[str] = Counter(total[system]["by_endpoint"])
        by_endpoint.update(entry.get("by_endpoint") or {})
        total[system]["by_endpoint"] = dict(sorted(by_endpoint.items()))
        total[system]["total"] = sum(by_endpoint.values())


def build_report(
    *,
    dag_id: str,
    run_id: str,
    run_info: Mapping[str, Any] | None,
    task_outputs: Iterable[Mapping[str, Any]],
    failed_tasks: Iterable[Mapping[str, str]],
    state: str,
    finished_at: datetime | None = None,
) -> dict[str, Any]:
    """Assemble the report from what the run's tasks pushed.

    :param run_info: the first task's output, or None when it failed.
    :param task_outputs: outputs of the tasks that pushed one: each may hold ``flows`` (flow
        name to a flow result dict) and ``api_calls``.
    :param failed_tasks: ``{"task_id", "error"}`` of failed or upstream-failed tasks.
    :param state: ``success`` or ``failed``.
    """
    flows: dict[str, dict[str, int]] = {flow: {} for flow in FLOWS}
    flow_records: dict[str, int] = {flow: 0 for flow in FLOWS}
    flow_status = {flow: "not_run" for flow in FLOWS}
    conflicts: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    api_calls: dict[str, dict[str, Any]] = {
        system: {"total": 0, "by_endpoint": {}} for system in ("salesforce", "cerkl")
    }
    for output in task_outputs:
        _merge_calls(api_calls, output.get("api_calls") or {})
        for flow, result in (output.get("flows") or {}).items():
            counts = Counter(flows[flow])
            counts.update(result.get("counts") or {})
            flows[flow] = dict(sorted(counts.items()))
            flow_records[flow] += int(result.get("records") or 0)
            if result.get("completed"):
                flow_status[flow] = "completed"
            elif flow_status[flow] == "not_run":
                flow_status[flow] = "incomplete"
            conflicts.extend(result.get("conflicts") or [])
            rejected.extend(result.get("rejected") or [])
            notes.extend(result.get("notes") or [])

    windows = (run_info or {}).get("windows") or {}
    starts = [w["start"] for w in windows.values()]
    ends = [w["end"] for w in windows.values()]
    return {
        "version": REPORT_VERSION,
        "dag_id": dag_id,
        "run_id": run_id,
        "state": state,
        "dry_run": bool((run_info or {}).get("dry_run", False)),
        "full_sync": bool((run_info or {}).get("full_sync", False)),
        "window": {"start": min(starts) if starts else None, "end": max(ends) if ends else None},
        "windows": {flow: {"start": w["start"], "end": w["end"]} for flow, w in windows.items()},
        "started_at": (run_info or {}).get("started_at"),
        "finished_at": (finished_at or datetime.now(UTC)).isoformat(),
        "flows": flows,
        "flow_status": flow_status,
        "flow_records": flow_records,
        "conflicts": conflicts,
        "rejected": rejected,
        "notes": notes,
        "failed_tasks": list(failed_tasks),
        "api_calls": api_calls,
    }


def summarize(report: Mapping[str, Any]) -> str:
    """Return a few plain lines that summarize what the run did."""
    lines = [
        f"Run {report['run_id']} of {report['dag_id']}: {report['state']}"
        + (" (dry run)" if report["dry_run"] else "")
        + (" (full sync)" if report["full_sync"] else ""),
        f"Window: {report['window']['start']} to {report['window']['end']}",
    ]
    for flow, counts in report["flows"].items():
        shown = ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "nothing to do"
        lines.append(f"  {flow} [{report['flow_status'][flow]}]: {shown}")
    lines.append(
        f"Conflicts: {len(report['conflicts'])}; rejected records: {len(report['rejected'])}"
    )
    calls = report["api_calls"]
    lines.append(
        f"API calls: Salesforce {calls['salesforce']['total']}, Cerkl {calls['cerkl']['total']}"
    )
    for task in report["failed_tasks"]:
        lines.append(f"  failed task {task['task_id']}: {task['error']}")
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], folder: str) -> Path:
    """Validate the report and write it as ``<folder>/<dag_id>/<run_id>.json``.

    :raises ConfigError: when the folder cannot be created or written, naming the folder and
        the ``report_folder`` setting that chooses it.
    """
    from include.cerkl_sync.config import ConfigError

    validate_report(report)
    safe_run = re.sub(r"[^A-Za-z0-9_.+-]+", "_", report["run_id"])
    target = Path(folder) / report["dag_id"] / f"{safe_run}.json"
    tmp = target.with_suffix(".json.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the run report under {folder!r} ({type(exc).__name__}: "
            f"{exc.strerror or exc}): set report_folder in the cerkl_sync_config Variable to a "
            "folder the Airflow worker can create and write"
        ) from exc
    return target
