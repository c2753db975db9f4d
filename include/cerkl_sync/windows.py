"""Time windows: which changes each flow of one DAG run reads.

A flow's window starts at the earlier of (data interval start minus the lookback) and the end
of that flow's last completed window, and ends at the data interval end. A day whose run was
skipped or failed is therefore read again by the next run, even with ``catchup=False``. A
manual run without a data interval covers the time since the last completed window, capped at
``max_manual_window_hours``. A ``full_sync`` run has no lower bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from include.cerkl_sync.config import FLOWS, SyncConfig

#: Lower bound of a full-sync window: before any Salesforce or Cerkl record.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SyncWindow:
    """Half-open interval ``(start, end]`` of change timestamps one flow reads in a run."""

    flow: str
    start: datetime
    end: datetime
    full_sync: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "flow": self.flow,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "full_sync": self.full_sync,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SyncWindow:
        return cls(
            flow=str(data["flow"]),
            start=datetime.fromisoformat(str(data["start"])),
            end=datetime.fromisoformat(str(data["end"])),
            full_sync=bool(data.get("full_sync", False)),
        )


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(
            f"Window bound {value.isoformat()} has no time zone; pass aware UTC times."
        )
    # A plain datetime, because Airflow hands out pendulum DateTimes, whose arithmetic
    # results do not compare with standard-library datetimes.
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def compute_windows(
    *,
    interval_start: datetime | None,
    interval_end: datetime | None,
    last_window_ends: Mapping[str, datetime | None],
    now: datetime,
    config: SyncConfig,
    full_sync: bool = False,
) -> dict[str, SyncWindow]:
    """Compute the window of every flow for one run.

    :param interval_start: the run's data interval start, or ``None`` for a manual run
        without a logical date.
    :param interval_end: the run's data interval end, or ``None`` likewise.
    :param last_window_ends: end of each flow's last completed window (missing or ``None``
        when the flow never completed).
    :param now: the current time, used by manual runs.
    :param config: sync settings (lookback and the manual-run cap).
    :param full_sync: read everything, ignoring windows.
    :return: one window per flow name in :data:`FLOWS`.
    :raises ValueError: when a time has no time zone or the interval start is after its end.
    """
    now = _utc(now)
    lookback = timedelta(minutes=config.lookback_minutes)
    manual_cap = timedelta(hours=config.max_manual_window_hours)
    windows: dict[str, SyncWindow] = {}
    for flow in FLOWS:
        last_end = last_window_ends.get(flow)
        last_end = _utc(last_end) if last_end is not None else None
        if interval_start is None or interval_end is None:
            end = now
            earliest = end - manual_cap
            start = max(earliest, last_end - lookback) if last_end is not None else earliest
        else:
            end = _utc(interval_end)
            if _utc(interval_start) > end:
                raise ValueError(
                    f"Data interval start {interval_start.isoformat()} is after its end "
                    f"{interval_end.isoformat()}; pass the start first."
                )
            start = _utc(interval_start) - lookback
            if last_end is not None and last_end < start:
                start = last_end
        if full_sync:
            start = EPOCH
        windows[flow] = SyncWindow(flow=flow, start=start, end=end, full_sync=full_sync)
    return windows
