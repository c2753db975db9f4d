"""Tests of ``compute_windows``: scheduled, late, manual and full-sync runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from include.cerkl_sync.config import FLOWS, parse_config
from include.cerkl_sync.windows import EPOCH, SyncWindow, compute_windows

DAY_START = datetime(2026, 3, 10, tzinfo=UTC)
DAY_END = datetime(2026, 3, 11, tzinfo=UTC)
NOW = datetime(2026, 3, 11, 0, 5, tzinfo=UTC)
CONFIG = parse_config(None)


def test_compute_windows_one_per_flow() -> None:
    windows = compute_windows(
        interval_start=DAY_START, interval_end=DAY_END, last_window_ends={}, now=NOW, config=CONFIG
    )

    assert set(windows) == set(FLOWS)
    for flow, window in windows.items():
        assert window.flow == flow


def test_compute_windows_first_run_uses_lookback() -> None:
    windows = compute_windows(
        interval_start=DAY_START, interval_end=DAY_END, last_window_ends={}, now=NOW, config=CONFIG
    )

    window = windows["contacts_to_subscribers"]
    assert window.start == DAY_START - timedelta(minutes=15)
    assert window.end == DAY_END
    assert window.full_sync is False


def test_compute_windows_configured_lookback() -> None:
    config = parse_config({"lookback_minutes": 0})

    windows = compute_windows(
        interval_start=DAY_START, interval_end=DAY_END, last_window_ends={}, now=NOW, config=config
    )

    assert windows["campaigns_to_segments"].start == DAY_START


def test_compute_windows_recent_last_end_keeps_lookback() -> None:
    last_ends = {"contacts_to_subscribers": DAY_START}

    windows = compute_windows(
        interval_start=DAY_START,
        interval_end=DAY_END,
        last_window_ends=last_ends,
        now=NOW,
        config=CONFIG,
    )

    assert windows["contacts_to_subscribers"].start == DAY_START - timedelta(minutes=15)


def test_compute_windows_missed_day_reads_from_last_end() -> None:
    two_days_ago = DAY_START - timedelta(days=2)
    last_ends = {"unsubscribes_to_contacts": two_days_ago, "contacts_to_subscribers": DAY_START}

    windows = compute_windows(
        interval_start=DAY_START,
        interval_end=DAY_END,
        last_window_ends=last_ends,
        now=NOW,
        config=CONFIG,
    )

    assert windows["unsubscribes_to_contacts"].start == two_days_ago
    assert windows["contacts_to_subscribers"].start == DAY_START - timedelta(minutes=15)


def test_compute_windows_none_last_end_is_first_run() -> None:
    windows = compute_windows(
        interval_start=DAY_START,
        interval_end=DAY_END,
        last_window_ends={"contacts_to_subscribers": None},
        now=NOW,
        config=CONFIG,
    )

    assert windows["contacts_to_subscribers"].start == DAY_START - timedelta(minutes=15)


def test_compute_windows_converts_offsets_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))

    windows = compute_windows(
        interval_start=DAY_START.astimezone(plus_two),
        interval_end=DAY_END.astimezone(plus_two),
        last_window_ends={},
        now=NOW,
        config=CONFIG,
    )

    window = windows["contacts_to_subscribers"]
    assert window.end == DAY_END
    assert window.end.utcoffset() == timedelta(0)
    assert window.start.utcoffset() == timedelta(0)


def test_compute_windows_manual_run_since_last_end() -> None:
    last_end = NOW - timedelta(hours=5)

    windows = compute_windows(
        interval_start=None,
        interval_end=None,
        last_window_ends={flow: last_end for flow in FLOWS},
        now=NOW,
        config=CONFIG,
    )

    window = windows["interests_to_contacts"]
    assert window.end == NOW
    assert window.start == last_end - timedelta(minutes=15)


def test_compute_windows_manual_run_capped() -> None:
    config = parse_config({"max_manual_window_hours": 24})

    windows = compute_windows(
        interval_start=None,
        interval_end=None,
        last_window_ends={"contacts_to_subscribers": NOW - timedelta(days=10)},
        now=NOW,
        config=config,
    )

    assert windows["contacts_to_subscribers"].start == NOW - timedelta(hours=24)
    assert windows["campaigns_to_segments"].start == NOW - timedelta(hours=24)


def test_compute_windows_full_sync_ignores_windows() -> None:
    windows = compute_windows(
        interval_start=DAY_START,
        interval_end=DAY_END,
        last_window_ends={flow: DAY_START for flow in FLOWS},
        now=NOW,
        config=CONFIG,
        full_sync=True,
    )

    for window in windows.values():
        assert window.start == EPOCH
        assert window.end == DAY_END
        assert window.full_sync is True


def test_compute_windows_manual_full_sync_ends_now() -> None:
    windows = compute_windows(
        interval_start=None,
        interval_end=None,
        last_window_ends={},
        now=NOW,
        config=CONFIG,
        full_sync=True,
    )

    assert windows["contacts_to_subscribers"].start == EPOCH
    assert windows["contacts_to_subscribers"].end == NOW


@pytest.mark.parametrize(
    ("interval_start", "interval_end", "now", "last_end"),
    [
        (DAY_START.replace(tzinfo=None), DAY_END, NOW, None),
        (DAY_START, DAY_END.replace(tzinfo=None), NOW, None),
        (DAY_START, DAY_END, NOW.replace(tzinfo=None), None),
        (DAY_START, DAY_END, NOW, DAY_START.replace(tzinfo=None)),
    ],
)
def test_compute_windows_naive_time_rejected(
    interval_start: datetime, interval_end: datetime, now: datetime, last_end: datetime | None
) -> None:
    with pytest.raises(ValueError) as caught:
        compute_windows(
            interval_start=interval_start,
            interval_end=interval_end,
            last_window_ends={"contacts_to_subscribers": last_end},
            now=now,
            config=CONFIG,
        )

    assert "no time zone" in str(caught.value)
    assert "aware UTC" in str(caught.value)


def test_compute_windows_reversed_interval_rejected() -> None:
    with pytest.raises(ValueError) as caught:
        compute_windows(
            interval_start=DAY_END,
            interval_end=DAY_START,
            last_window_ends={},
            now=NOW,
            config=CONFIG,
        )

    assert DAY_END.isoformat() in str(caught.value)
    assert DAY_START.isoformat() in str(caught.value)


def test_sync_window_dict_round_trip() -> None:
    window = SyncWindow(flow="contacts_to_subscribers", start=DAY_START, end=DAY_END)

    assert SyncWindow.from_dict(window.to_dict()) == window


def test_compute_windows_accepts_pendulum_datetimes() -> None:
    import pendulum

    windows = compute_windows(
        interval_start=pendulum.instance(DAY_START),
        interval_end=pendulum.instance(DAY_END),
        last_window_ends={"contacts_to_subscribers": DAY_START - timedelta(days=2)},
        now=pendulum.instance(NOW),
        config=CONFIG,
    )

    window = windows["contacts_to_subscribers"]
    assert window.start == DAY_START - timedelta(days=2)
    assert window.end == DAY_END
    assert type(window.end) is datetime
