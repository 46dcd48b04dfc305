"""SIGKILL collect+load of the bundled sample at random moments, restart, repeat: nothing lost, nothing doubled.

A short loop runs in CI; `RESONANZ_SOAK=1` runs the long one (or run crashloop.py directly for figures).
"""

from __future__ import annotations

import os
from pathlib import Path

from crashloop import soak


def test_random_kills_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    long = os.environ.get("RESONANZ_SOAK") == "1"
    result = soak(trials=20 if long else 1, kills_per_trial=6 if long else 3, seed=7, workdir=tmp_path, window=8.0 if long else 3.0)
    assert result.kills >= 1, "no kill landed while the worker ran: widen the window"
    assert result.lost == 0
    assert result.duplicates == 0
    assert result.cursor_problems == 0
    assert result.posts_expected > 3000  # the whole sample: both X replays and the five feeds
