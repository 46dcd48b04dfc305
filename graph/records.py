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
