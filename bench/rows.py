"""Result rows shared by the quality evaluations: one dict per figure, printed as a table and saved as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = ("task", "dataset", "lang", "split", "metric", "value", "n")


def row(task: str, dataset: str, lang: str, split: str, metric: str, value: float, n: int) -> dict:
    """Return one figure as a row (value rounded to 4 places)."""
    return {"task": task, "dataset": dataset, "lang": lang, "split": split, "metric": metric, "value": round(float(value), 4), "n": n}


def print_rows(rows: list[dict]) -> None:
    """Print the rows as an aligned table, each column as wide as its longest entry."""
    widths = {c: max([len(c)] + [len(_cell(r[c])) for r in rows]) for c in COLUMNS}
    print("  ".join(c.rjust(widths[c]) if c in ("value", "n") else c.ljust(widths[c]) for c in COLUMNS))
    for r in rows:
        print("  ".join(_cell(r[c]).rjust(widths[c]) if c in ("value", "n") else _cell(r[c]).ljust(widths[c]) for c in COLUMNS))


def write_results(path: Path, rows: list[dict], **extra: Any) -> None:
    """Write {"rows": rows, **extra} as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, **extra}, indent=2) + "\n", encoding="utf-8")


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
