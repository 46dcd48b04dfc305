"""The record the rank room hands to the warehouse: one row of `influence_scores`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class InfluenceScore:
    """How influential one account was in the data window ending at `as_of`, and why."""

    as_of: datetime
    source: str
    account_id: str
    rank: int  # 1 = most influential among the returned accounts
    score: float
    pagerank: float
    in_degree: float  # sum of decayed, kind-weighted edges towards the account
    out_degree: float  # the same for edges the account made
    explanation: str  # one plain-language line for a marketer
    factors: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class BotScore:
    """How automated or spammy an account looks from its metadata; one row of `bot_scores`."""

    as_of: datetime
    source: str
    account_id: str
    bot_score: float  # 0 = human-looking, 1 = every known signal says automated
    likely_bot: bool  # bot_score >= 0.5: down-weighted in the ranking
    explanation: str
    signals: dict[str, float] = field(default_factory=dict)  # each in [0, 1]; absent when unknown


@dataclass(slots=True)
class Community:
    """One group of accounts that engage with each other; one row of `communities`."""

    as_of: datetime
    community_id: int  # 0 = the largest group in this ranking
    size: int
    influence: float  # sum of the members' scores
    leaders: list[str]  # "source/account_id" of the highest-scored members, best first
    brands: dict[str, int]  # tracked brands discussed inside the group: interactions per brand
    net_sentiment: float  # (positive - negative) / (rated + 5) over interactions inside the group
    explanation: str


@dataclass(slots=True)
class CommunityMember:
    """Which community an account belongs to; one row of `community_members`."""

    as_of: datetime
    source: str
    account_id: str
    community_id: int
    rank_in_community: int  # 1 = the member with the highest score


@dataclass(slots=True)
class RisingInfluencer:
    """An account whose score rose well above its own history; one row of `rising_influencers`."""

    as_of: datetime
    source: str
    account_id: str
    rank: int  # 1 = the strongest rise
    rise: float  # robust z-score of today's score against earlier rankings
    score: float
    previous_median: float
    history_points: int
    explanation: str


@dataclass(slots=True)
class BrandInfluence:
    """An account's standing in the subgraph of interactions about one brand; one row of `brand_influence`."""

    as_of: datetime
    brand: str
    source: str
    account_id: str
    rank: int
    pagerank: float  # PageRank inside the brand's subgraph
    engagement: float  # decayed, kind-weighted interactions received about the brand


@dataclass(slots=True)
class RankingResult:
    """Everything one ranking run produces, each list ready for its warehouse table."""

    scores: list[InfluenceScore]
    communities: list[Community]
    members: list[CommunityMember]
    bots: list[BotScore]
    rising: list[RisingInfluencer]
    brands: list[BrandInfluence]
    examples: dict[tuple[str, str], list[str]]  # (source, account_id) -> 2–3 example post ids
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, for the log
