"""rank: the interaction graph and explained influence scores."""

from graph.influence import rank_accounts
from graph.records import InfluenceScore
from graph.top import format_top

__all__ = ["InfluenceScore", "format_top", "rank_accounts"]
