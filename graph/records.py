"""The record the rank room hands to the warehouse: one row of `influence_scores`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

import pyarrow as pa


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
    person_id: str | None = None  # the CRM customer this account was counted with, when linked


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


Row = TypeVar("Row")
_BATCH = 10_000


class ArrowRows(Sequence[Row], Generic[Row]):
    """A read-only list of records kept as one Arrow table; a record is built only when read.

    A ranking of a million accounts would otherwise hold a million dataclasses (and their
    factor dicts) that the warehouse turns straight back into columns. Columns named in
    `json_columns` hold JSON text and come back as dicts.
    """

    def __init__(self, table: pa.Table, record_type: type[Row], json_columns: tuple[str, ...] = ()) -> None:
        self.table = table
        self.record_type = record_type
        self.json_columns = json_columns
        self._names = [f.name for f in fields(record_type)]  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.table.num_rows

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...
    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._records(self.table.slice(start, max(stop - start, 0)))
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(index)
        return self._records(self.table.slice(position, 1))[0]

    def __iter__(self) -> Iterator[Row]:
        for start in range(0, len(self), _BATCH):
            yield from self._records(self.table.slice(start, _BATCH))

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"ArrowRows({self.record_type.__name__}, {len(self):,} rows)"

    def _records(self, part: pa.Table) -> list[Row]:
        columns: dict[str, list[Any]] = {name: part[name].to_pylist() for name in self._names if name in part.column_names}
        for name in self.json_columns:
            columns[name] = [json.loads(value) if value is not None else {} for value in columns[name]]
        return [self.record_type(**dict(zip(columns, values))) for values in zip(*columns.values())]


@dataclass(slots=True)
class RankingResult:
    """Everything one ranking run produces, each list ready for its warehouse table."""

    scores: Sequence[InfluenceScore]  # an ArrowRows from rank_all: `.table` is ready for the warehouse
    communities: list[Community]
    members: Sequence[CommunityMember]
    bots: list[BotScore]
    rising: list[RisingInfluencer]
    brands: list[BrandInfluence]
    examples: dict[tuple[str, str], list[str]]  # (source, account_id) -> 2–3 example post ids
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, for the log
