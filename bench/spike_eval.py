"""Evaluate the volume-spike detector (act/spikes.py) on real dated events: hits and false alarms.

Data: /work/shared/data/graph_twitter_influence_propagation (Li, Xie, Farajtabar, Song 2016): per
account, the time-stamped tweets of a celebrity and 50 of its retweeters, and EVENTS.tsv with the
date of a real-world event for the account (an album release, a court hearing, the Super Bowl).
The detector sees hourly activity counts only. An event is HIT when an alarm starts between 12 h
before and 36 h after its timestamp (event times are often a calendar day at 00:00 UTC). Alarm
hours less than 3 h apart form one alarm episode; an episode that touches no event window is a
FALSE ALARM. Methods: "seasonal" (the product's detector), "seasonal_no_floor" (without its
72-hour scale floor), "flat" (no seasonality: the previous 72 hours as baseline).
Run: .venv/bin/python -m bench.spike_eval
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from act.spikes import BUCKET, SpikeScore, hourly_counts, score_hours, spikes
from bench.machine import machine_info

DATA = Path("/work/shared/data/graph_twitter_influence_propagation")
RESULTS = Path(__file__).parent / "results" / "spike_eval.json"
BEFORE, AFTER = timedelta(hours=12), timedelta(hours=36)
MERGE_GAP = timedelta(hours=3)
MIN_HISTORY_DAYS = 3
THRESHOLDS = (3.0, 4.0, 5.0, 6.0)
MIN_COUNT = 5


@dataclass
class Series:
    handle: str
    hours: list[datetime]
    counts: np.ndarray
    events: list[tuple[datetime, str]]


def load() -> list[Series]:
    events: dict[str, list[tuple[datetime, str]]] = {}
    with (DATA / "EVENTS.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            moment = datetime.fromtimestamp(int(row["TIME"]), UTC)
            events.setdefault(row["HANDLE"].lower(), []).append((moment, row["DESC_OF_EVENT"].strip("'")))
    series = []
    for path in sorted((DATA / "tweets").glob("*.txt")):
        times = [datetime.fromtimestamp(int(line.split(",")[0]), UTC)
                 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        hours, counts = hourly_counts(times, min(times), max(times))
        series.append(Series(path.stem, hours, counts, events.get(path.stem.lower(), [])))
    return series


def flat_scores(hours: list[datetime], counts: np.ndarray, window_hours: int = 72) -> list[SpikeScore]:
    """The comparison without seasonality: each hour against the previous 72 hours, same robust z."""
    out = []
    for i in range(window_hours, len(hours)):
        history = counts[i - window_hours:i].astype(float)
        median = float(np.median(history))
        scale = max(1.4826 * float(np.median(np.abs(history - median))), median ** 0.5, 1.0)
        out.append(SpikeScore(hours[i], int(counts[i]), median, scale, window_hours,
                              (float(counts[i]) - median) / scale, "previous 72 hours"))
    return out


def episodes(alarms: list[SpikeScore]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for alarm in sorted(alarms, key=lambda s: s.start):
        if merged and alarm.start - merged[-1][1] <= MERGE_GAP:
            merged[-1] = (merged[-1][0], alarm.start + BUCKET)
        else:
            merged.append((alarm.start, alarm.start + BUCKET))
    return merged


def evaluate(series: list[Series], method: str, threshold: float) -> dict[str, object]:
    per_handle, hits, evaluable, false_alarms, weeks = [], 0, 0, 0, 0.0
    for s in series:
        if method == "flat":
            scores = flat_scores(s.hours, s.counts)
        else:  # "seasonal" is the product's detector; "seasonal_no_floor" drops its 72-hour scale floor
            scores = score_hours(s.hours, s.counts, recent_hours=72 if method == "seasonal" else 0)
        found = episodes(spikes(scores, threshold, MIN_COUNT))
        first_scored = s.hours[0] + timedelta(days=MIN_HISTORY_DAYS)
        # Only events the detector could have seen: inside the series, after enough history.
        events = [(t, d) for t, d in s.events if first_scored <= t <= s.hours[-1]]
        windows = [(t - BEFORE, t + AFTER) for t, _ in events]
        hit = [any(w0 <= e0 <= w1 for e0, _ in found) for w0, w1 in windows]
        false = [e for e in found if not any(e0 <= w1 and e1 >= w0 for (w0, w1) in windows for e0, e1 in [e])]
        span_weeks = (s.hours[-1] - first_scored) / timedelta(weeks=1)
        per_handle.append({"handle": s.handle, "events": len(events), "hits": sum(hit),
                           "alarm_episodes": len(found), "false_alarms": len(false),
                           "weeks_scored": round(span_weeks, 2),
                           "event_descriptions": [d for _, d in events]})
        hits += sum(hit)
        evaluable += len(events)
        false_alarms += len(false)
        weeks += span_weeks
    return {"method": method, "z_threshold": threshold, "min_count": MIN_COUNT, "events": evaluable,
            "hits": hits, "recall": round(hits / evaluable, 3) if evaluable else None,
            "false_alarms": false_alarms, "false_alarms_per_week": round(false_alarms / weeks, 2) if weeks else None,
            "per_handle": per_handle}


def main() -> None:
    if not (DATA / "EVENTS.tsv").exists():
        print(f"{DATA} is absent: nothing to evaluate (this benchmark needs the shared data folder)")
        return
    started = time.perf_counter()
    series = load()
    runs = [evaluate(series, method, z) for method in ("seasonal", "seasonal_no_floor", "flat")
            for z in THRESHOLDS]
    seconds = time.perf_counter() - started
    print(f"{len(series)} accounts, {sum(len(s.hours) for s in series):,} hours scored in {seconds:.1f} s")
    print(f"{'method':17} {'z':>4} {'events':>6} {'hits':>4} {'recall':>6} {'false':>5} {'false/week':>10}")
    for r in runs:
        print(f"{r['method']:17} {r['z_threshold']:>4} {r['events']:>6} {r['hits']:>4} {r['recall']:>6} "
              f"{r['false_alarms']:>5} {r['false_alarms_per_week']:>10}")
    default = next(r for r in runs if r["method"] == "seasonal" and r["z_threshold"] == 4.0)
    print("\nseasonal, z >= 4, per account:")
    for h in default["per_handle"]:  # type: ignore[union-attr]
        print(f"  {h['handle']:14} events {h['events']} hits {h['hits']} alarm episodes {h['alarm_episodes']:3} "
              f"false {h['false_alarms']:3} over {h['weeks_scored']} weeks")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "dataset": str(DATA), "hit_window_hours": [-12, 36], "merge_gap_hours": 3,
        "min_history_days": MIN_HISTORY_DAYS, "seconds": round(seconds, 2), "machine": machine_info(),
        "runs": runs,
    }, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
