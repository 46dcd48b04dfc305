"""Print the top of a ranking for the CLI and the demo."""

from __future__ import annotations

from graph.records import InfluenceScore


def format_top(scores: list[InfluenceScore], n: int = 10) -> str:
    """Return the first `n` ranked accounts as aligned text lines with their explanations."""
    top = sorted(scores, key=lambda score: score.rank)[:n]
    if not top:
        return "No accounts to rank: the interaction graph is empty."
    width = max(len(f"{s.source}/{s.account_id}") for s in top)
    lines = [f"{'#':>3}  {'account':<{width}}  {'score':>6}  why"]
    for s in top:
        lines.append(f"{s.rank:>3}  {f'{s.source}/{s.account_id}':<{width}}  {s.score:6.3f}  {s.explanation}")
    return "\n".join(lines)
