"""Turn an Arrow interactions table into weighted, time-decayed edges between account nodes.

Everything here is columnar (pyarrow.compute and numpy): no Python loop per edge, so a
million interactions build in about a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.records import INTERACTION_KINDS

INTERACTION_COLUMNS: tuple[str, ...] = (
    "source", "kind", "src_account_id", "dst_account_id", "post_id", "target_post_id", "created_at",
)
POST_SIGNAL_COLUMNS: tuple[str, ...] = ("source", "post_id", "brand_related", "sentiment")
# Joins node keys; a unit separator never occurs in a handle or numeric id.
KEY_SEPARATOR = "\x1f"
_MICROS_PER_DAY = 86_400 * 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(slots=True)
class EdgeList:
    """Parallel arrays, one entry per kept interaction, plus the node table they index."""

    as_of: datetime
    node_source: list[str]  # node i is (node_source[i], node_account[i]); sorted by that pair
    node_account: list[str]
    src: np.ndarray  # int64 node index of the actor
    dst: np.ndarray  # int64 node index of the account acted upon
    weight: np.ndarray  # kind weight x time decay
    kind: np.ndarray  # int8 index into INTERACTION_KINDS
    post: np.ndarray  # int64 id of the acting post, unique per (source, post_id) where sentiment is known
    brand_related: np.ndarray  # bool, False when unknown
    sentiment: np.ndarray  # int8: 1 positive, 0 neutral, -1 negative, -2 unknown
    rows: np.ndarray | None = None  # int64 row of each kept edge in the input interactions table
    created_us: np.ndarray | None = None  # float64 microseconds since the epoch, NaN where unknown

    @property
    def n_nodes(self) -> int:
        return len(self.node_source)


def decay_factor(age_days: np.ndarray, half_life_days: float) -> np.ndarray:
    """Return exp(-ln2 * age / half_life): 1 now, 1/2 one half-life ago."""
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days}")
    return np.exp(-math.log(2.0) * np.asarray(age_days, dtype=np.float64) / half_life_days)


def build_edges(
    interactions: pa.Table,
    weights: dict[str, float],
    half_life_days: float,
    post_signals: pa.Table | None = None,
    as_of: datetime | None = None,
) -> EdgeList:
    """Return the weighted edge list; drops self-loops, zero weights and edges after `as_of`."""
    _require_columns(interactions, INTERACTION_COLUMNS, "interactions")
    table = interactions.select(list(INTERACTION_COLUMNS))
    # as_of comes from every interaction, self-loops included: they are part of the window.
    as_of = _resolve_as_of(as_of, _timestamps_as_micros(table["created_at"]), table.num_rows)
    for column in ("source", "kind", "src_account_id", "dst_account_id", "post_id"):
        if table[column].null_count:
            raise ValueError(f"interactions.{column} has {table[column].null_count} missing value(s); it must always be set")
    not_loop = pc.not_equal(table["src_account_id"], table["dst_account_id"])
    rows = np.flatnonzero(not_loop.to_numpy(zero_copy_only=False)) if len(not_loop) else np.zeros(0, np.int64)
    table = table.filter(not_loop)
    created_us = _timestamps_as_micros(table["created_at"])
    as_of_us = _to_micros(as_of)

    kind_codes = _kind_codes(table["kind"], weights)
    kind_weight = np.array([float(weights.get(kind, 0.0)) for kind in INTERACTION_KINDS])
    # A missing timestamp counts as "at as_of": the interaction is real, only its time is unknown.
    age_us = np.where(np.isnan(created_us), 0.0, as_of_us - np.nan_to_num(created_us))
    weight = kind_weight[kind_codes] * decay_factor(age_us / _MICROS_PER_DAY, half_life_days)
    keep = (age_us >= 0) & (weight > 0)
    table = table.filter(pa.array(keep))
    kind_codes, weight, rows, created_us = kind_codes[keep], weight[keep], rows[keep], created_us[keep]

    brand, sentiment = _post_signals_for(table, post_signals)
    node_source, node_account, node_index = _encode_nodes(table)
    post_index = _post_index(table, labelled=sentiment != -2)
    n_edges = table.num_rows
    return EdgeList(
        as_of=as_of,
        node_source=node_source,
        node_account=node_account,
        src=node_index[:n_edges],
        dst=node_index[n_edges:],
        weight=weight,
        kind=kind_codes.astype(np.int8),
        post=post_index,
        brand_related=brand,
        sentiment=sentiment,
        rows=rows,
        created_us=created_us,
    )


def _encode_nodes(table: pa.Table) -> tuple[list[str], list[str], np.ndarray]:
    """Return (node sources, node accounts, node index of every src then every dst row)."""
    sources = pc.unique(table["source"]).to_pylist() if table.num_rows else []
    if len(sources) == 1:
        # One source (the common case): the account ids alone are the keys, which spares
        # joining and hashing millions of longer strings.
        accounts, node_index = _encode_sorted(pa.chunked_array(
            table["src_account_id"].chunks + table["dst_account_id"].chunks, type=pa.string()))
        names = accounts.to_pylist()
        return [sources[0]] * len(names), names, node_index
    src_keys = pc.binary_join_element_wise(table["source"], table["src_account_id"], KEY_SEPARATOR)
    dst_keys = pc.binary_join_element_wise(table["source"], table["dst_account_id"], KEY_SEPARATOR)
    nodes, node_index = _encode_sorted(pa.chunked_array(src_keys.chunks + dst_keys.chunks, type=pa.string()))
    pairs = [key.split(KEY_SEPARATOR, 1) for key in nodes.to_pylist()]
    return [pair[0] for pair in pairs], [pair[1] for pair in pairs], node_index


def _encode_sorted(keys: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Return the sorted distinct keys and each key's position among them.

    One hash pass (dictionary_encode) then a sort of the distinct keys only: sorted node ids make
    the output independent of row order, and this is far cheaper than index_in on millions.
    """
    if len(keys) == 0:
        return pa.array([], pa.string()), np.zeros(0, dtype=np.int64)
    encoded = pc.dictionary_encode(keys.combine_chunks())
    order = pc.sort_indices(encoded.dictionary).to_numpy()
    position = np.empty(order.size, dtype=np.int64)
    position[order] = np.arange(order.size)
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return pc.take(encoded.dictionary, pa.array(order)), position[codes]


def _post_index(table: pa.Table, labelled: np.ndarray) -> np.ndarray:
    """Return an id per acting post where a sentiment is known (0 elsewhere).

    Posts only need telling apart, to count a reaction once; hashing ten million post ids
    costs seconds, so only the labelled ones are hashed.
    """
    index = np.zeros(table.num_rows, dtype=np.int64)
    if labelled.any():
        rows = table.filter(pa.array(labelled))
        keys = pc.binary_join_element_wise(rows["source"], rows["post_id"], KEY_SEPARATOR).combine_chunks()
        index[labelled] = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False)
    return index


def _require_columns(table: pa.Table, columns: tuple[str, ...], name: str) -> None:
    missing = [column for column in columns if column not in table.column_names]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {', '.join(missing)}; has {', '.join(table.column_names)}")


def _timestamps_as_micros(column: pa.ChunkedArray) -> np.ndarray:
    """Return microseconds since the epoch (UTC) as float64, NaN where missing."""
    if not pa.types.is_timestamp(column.type):
        raise ValueError(f"interactions.created_at must be a timestamp column, got {column.type}")
    micros = pc.cast(column, pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
    return micros.to_numpy(zero_copy_only=False).astype(np.float64) if len(micros) else np.zeros(0)


def _resolve_as_of(as_of: datetime | None, created_us: np.ndarray, n_rows: int) -> datetime:
    if as_of is not None:
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=timezone.utc)
    known = created_us[~np.isnan(created_us)]
    if n_rows == 0:
        return _EPOCH  # nothing to rank, so the moment does not matter
    if known.size == 0:
        raise ValueError("no interaction has a created_at: pass as_of to say which moment the ranking is for")
    return _EPOCH + timedelta(microseconds=int(known.max()))


def _to_micros(moment: datetime) -> float:
    delta = moment - _EPOCH
    return float((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _kind_codes(kind: pa.ChunkedArray, weights: dict[str, float]) -> np.ndarray:
    codes = pc.index_in(kind, value_set=pa.array(INTERACTION_KINDS))
    unknown = pc.filter(kind, pc.is_null(codes))
    if len(unknown):
        seen = sorted({str(value) for value in pc.unique(unknown).to_pylist()})
        raise ValueError(f"unknown interaction kind(s) {seen}; expected one of {list(INTERACTION_KINDS)}")
    not_weighted = sorted(set(pc.unique(kind).to_pylist()) - set(weights))
    if not_weighted:
        raise ValueError(f"graph.weights has no weight for kind(s) {not_weighted}")
    return codes.to_numpy(zero_copy_only=False).astype(np.int64) if len(codes) else np.zeros(0, np.int64)


def _post_signals_for(table: pa.Table, post_signals: pa.Table | None) -> tuple[np.ndarray, np.ndarray]:
    """Return per-edge (brand_related, sentiment code) for the acting post of each edge."""
    n_edges = table.num_rows
    brand = np.zeros(n_edges, dtype=bool)
    sentiment = np.full(n_edges, -2, dtype=np.int8)
    if post_signals is None or n_edges == 0 or post_signals.num_rows == 0:
        return brand, sentiment
    _require_columns(post_signals, POST_SIGNAL_COLUMNS, "post_signals")
    signals = post_signals.select(list(POST_SIGNAL_COLUMNS))
    signal_keys = pc.binary_join_element_wise(signals["source"], signals["post_id"], KEY_SEPARATOR)
    edge_keys = pc.binary_join_element_wise(table["source"], table["post_id"], KEY_SEPARATOR)
    # index_in finds the first row per post, so a duplicated post keeps its first signal.
    row = pc.index_in(edge_keys, value_set=signal_keys)
    found = pc.is_valid(row).to_numpy(zero_copy_only=False)
    rows = row.to_numpy(zero_copy_only=False)[found].astype(np.int64)
    brand_col = pc.fill_null(signals["brand_related"].cast(pa.bool_()), False).to_numpy(zero_copy_only=False)
    brand[found] = brand_col[rows]
    labels = pc.utf8_lower(signals["sentiment"].cast(pa.string()))
    codes = np.full(signals.num_rows, -2, dtype=np.int8)
    for label, code in (("positive", 1), ("neutral", 0), ("negative", -1)):
        codes[pc.fill_null(pc.equal(labels, label), False).to_numpy(zero_copy_only=False)] = code
    sentiment[found] = codes[rows]
    return brand, sentiment


@dataclass(slots=True)
class AccountMerge:
    """How accounts were folded into persons: each original node's merged node and its person."""

    node_of: np.ndarray  # int64 merged node index per original node
    node_source: list[str]  # the original nodes, as in the EdgeList before merging
    node_account: list[str]
    person: list[str | None]  # person id per original node, None when not linked

    @property
    def merged(self) -> bool:
        return bool(self.node_of.size) and int(self.node_of.max()) + 1 < self.node_of.size


def node_keys(edges: EdgeList) -> pa.Array:
    """Return each node's "source<US>account_id" key, the form other tables are matched on."""
    return pa.array([f"{s}{KEY_SEPARATOR}{a}" for s, a in zip(edges.node_source, edges.node_account)], pa.string())


def merge_accounts(edges: EdgeList, identities: pa.Table | None) -> tuple[EdgeList, AccountMerge]:
    """Return the edge list with the accounts of one person as one node, and how they were merged.

    `identities` has columns source, account_id, person_id (e.g. the CRM customer an account is
    linked to). A person's node takes the name of its first account in (source, account_id)
    order; interactions between two accounts of one person become self-loops and are dropped.
    """
    n = edges.n_nodes
    person: list[str | None] = [None] * n
    identity = np.arange(n, dtype=np.int64)
    if identities is None or identities.num_rows == 0 or n == 0:
        return edges, AccountMerge(identity, edges.node_source, edges.node_account, person)
    _require_columns(identities, ("source", "account_id", "person_id"), "identities")
    links = identities.select(["source", "account_id", "person_id"]).drop_null()
    link_keys = pc.binary_join_element_wise(links["source"].cast(pa.string()), links["account_id"].cast(pa.string()), KEY_SEPARATOR)
    row = pc.index_in(node_keys(edges), value_set=link_keys)
    found = pc.is_valid(row).to_numpy(zero_copy_only=False)
    if not found.any():
        return edges, AccountMerge(identity, edges.node_source, edges.node_account, person)
    people = links["person_id"].cast(pa.string()).take(pc.filter(row, pc.is_valid(row)))
    linked = np.flatnonzero(found)
    codes = pc.dictionary_encode(people.combine_chunks() if isinstance(people, pa.ChunkedArray) else people)
    code = codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    first = np.full(len(codes.dictionary), n, dtype=np.int64)
    np.minimum.at(first, code, linked)  # nodes are sorted, so the smallest index is the first account
    representative = identity.copy()
    representative[linked] = first[code]
    kept_nodes, node_of = np.unique(representative, return_inverse=True)
    for node, name in zip(linked.tolist(), people.to_pylist()):
        person[node] = name
    if kept_nodes.size == n:
        return edges, AccountMerge(identity, edges.node_source, edges.node_account, person)
    src, dst = node_of[edges.src], node_of[edges.dst]
    keep = src != dst
    merged = EdgeList(
        as_of=edges.as_of,
        node_source=[edges.node_source[i] for i in kept_nodes.tolist()],
        node_account=[edges.node_account[i] for i in kept_nodes.tolist()],
        src=src[keep], dst=dst[keep], weight=edges.weight[keep], kind=edges.kind[keep], post=edges.post[keep],
        brand_related=edges.brand_related[keep], sentiment=edges.sentiment[keep],
        rows=None if edges.rows is None else edges.rows[keep],
        created_us=None if edges.created_us is None else edges.created_us[keep],
    )
    return merged, AccountMerge(node_of, edges.node_source, edges.node_account, person)
