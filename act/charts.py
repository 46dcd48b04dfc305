"""Draw the report's charts with matplotlib and return them as PNG data URIs."""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

# Figure + FigureCanvasAgg never touch pyplot's global state or a display, so rendering is
# safe inside worker threads and on servers without a GUI.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from act.report import SentimentCounts, VoiceShare, VolumeRow

SENTIMENT_COLOURS = {"negative": "#d1495b", "neutral": "#b8c0cc", "positive": "#3a9d6e"}
SERIES_COLOURS = ["#1f5f8b", "#e69f00", "#56b4e9", "#009e73", "#cc79a7", "#0072b2", "#d55e00"]
LANGUAGE_NAMES = {"en": "English", "de": "German"}


def percent(share: float) -> str:
    """Format a share as a whole percent, showing small non-zero shares as "<1%"."""
    return "<1%" if 0 < share < 0.005 else f"{100 * share:.0f}%"


def to_data_uri(fig: Figure) -> str:
    """Encode a figure as a base64 PNG data URI."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def bucket_for_span(first: date, last: date) -> str:
    """Pick day, week or month buckets so the chart has a readable number of bars."""
    span = (last - first).days
    if span <= 62:
        return "day"
    if span <= 2 * 365:
        return "week"
    return "month"


def bucket_start(day: date, bucket: str) -> date:
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


def bucket_range(first: date, last: date, bucket: str) -> list[date]:
    """List every bucket start from `first` to `last`, so quiet periods show as empty slots."""
    current, stop, out = bucket_start(first, bucket), bucket_start(last, bucket), []
    while current <= stop:
        out.append(current)
        if bucket == "month":
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            current += timedelta(days=7 if bucket == "week" else 1)
    return out


BUCKET_LABELS = {"day": "%d %b", "week": "%d %b %Y", "month": "%b %Y"}


def volume_chart(volume: Sequence[VolumeRow], first: date, last: date) -> str:
    """Stack posts per source over the whole period, one bar per day, week or month."""
    bucket = bucket_for_span(first, last)
    buckets = bucket_range(first, last, bucket)
    counts: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for row in volume:
        counts[row.source][bucket_start(row.day, bucket)] += row.posts
    fig = Figure(figsize=(9, 3.2))
    ax = fig.add_subplot()
    # Bars sit at slot positions, not on a date axis: equal widths and no hour ticks on short periods.
    slots = list(range(len(buckets)))
    bottom = [0] * len(buckets)
    for i, source in enumerate(sorted(counts)):
        heights = [counts[source].get(b, 0) for b in buckets]
        ax.bar(slots, heights, width=0.8, bottom=bottom, label=source, color=SERIES_COLOURS[i % len(SERIES_COLOURS)])
        bottom = [a + b for a, b in zip(bottom, heights, strict=True)]
    step = max(1, len(buckets) // 12)
    ax.set_xticks(slots[::step], [b.strftime(BUCKET_LABELS[bucket]) for b in buckets[::step]],
                  rotation=30, ha="right")
    ax.set_xlim(-0.6, max(len(buckets), 7) - 0.4)
    ax.set_ylabel(f"posts per {bucket}")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper left", frameon=False, title="source")
    ax.spines[["top", "right"]].set_visible(False)
    return to_data_uri(fig)


def sentiment_chart(by_language: Mapping[str, SentimentCounts]) -> str:
    """Compare sentiment shares per language as 100% stacked horizontal bars."""
    languages = list(by_language)
    fig = Figure(figsize=(9, 0.7 + 0.6 * len(languages)))
    ax = fig.add_subplot()
    left = [0.0] * len(languages)
    labels = [f"{LANGUAGE_NAMES.get(lang, lang)} (n={by_language[lang].labelled})" for lang in languages]
    for label in ("negative", "neutral", "positive"):
        shares = [by_language[lang].share(label) for lang in languages]
        bars = ax.barh(labels, shares, left=left, color=SENTIMENT_COLOURS[label], label=label)
        for bar, share in zip(bars, shares, strict=True):
            if share >= 0.06:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2,
                        percent(share), ha="center", va="center", fontsize=9)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.xaxis.set_visible(False)
    ax.spines[["top", "right", "bottom"]].set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.05), ncol=3, frameon=False)
    return to_data_uri(fig)


def share_of_voice_chart(shares: Sequence[VoiceShare]) -> str:
    """Rank brand families by share of voice; competitors drawn in a second colour."""
    fig = Figure(figsize=(9, 0.6 + 0.4 * len(shares)))
    ax = fig.add_subplot()
    names = [s.family for s in shares]
    values = [s.share for s in shares]
    colours = ["#e69f00" if s.kind == "competitor" else "#1f5f8b" for s in shares]
    bars = ax.barh(names, values, color=colours)
    for bar, share in zip(bars, shares, strict=True):
        ax.text(bar.get_width() + 0.005, bar.get_y() + bar.get_height() / 2,
                f"{percent(share.share)} ({share.posts})", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.25 if values else 1)
    ax.xaxis.set_visible(False)
    ax.spines[["top", "right", "bottom"]].set_visible(False)
    return to_data_uri(fig)
