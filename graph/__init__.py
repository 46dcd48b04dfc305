"""rank: the interaction graph and explained influence scores."""

from graph.influence import rank_accounts
from graph.ranking import rank_all
from graph.records import InfluenceScore, RankingResult
from graph.top import format_top

__all__ = ["InfluenceScore", "RankingResult", "format_top", "rank_accounts", "rank_all"]
