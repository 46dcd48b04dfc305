"""The seasonal spike detector's arithmetic: daily rhythm is not a spike, the same count off-rhythm is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from act.spikes import hourly_counts, score_hours, spikes

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def _rhythm(days: int) -> tuple[list[datetime], np.ndarray]:
    """Two posts an hour, twenty every evening at 18:00 UTC."""
    hours = [START + timedelta(hours=i) for i in range(24 * days)]
    counts = np.array([20 if h.hour == 18 else 2 for h in hours], dtype=np.int64)
    return hours, counts


def test_the_usual_evening_peak_is_not_a_spike_but_the_same_volume_at_night_is() -> None:
    hours, counts = _rhythm(21)
    counts[-6] = 20  # 18:00 on the last day: as usual
    counts[-20] = 20  # 04:00 on the last day: twenty posts at night
    scored = {s.start.hour: s for s in score_hours(hours, counts, only_last=24)}
    assert scored[18].z < 1 and scored[18].baseline_median == 20
    assert scored[4].z >= 4 and scored[4].baseline == "same hour, same kind of day"
    assert [s.start.hour for s in spikes(scored.values(), z_threshold=4.0, min_count=5)] == [4]


def test_too_little_history_scores_nothing_and_counts_fill_empty_hours() -> None:
    times = [START, START + timedelta(minutes=5), START + timedelta(hours=3)]
    hours, counts = hourly_counts(times, START, START + timedelta(hours=4))
    assert counts.tolist() == [2, 0, 0, 1, 0] and len(hours) == 5
    assert score_hours(hours, counts) == []
