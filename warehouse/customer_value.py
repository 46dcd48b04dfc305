"""Customer value from CRM invoices: ABC classes, RFM segments and a 12-month CLV.

CLV uses the standard pair of models — BG/NBD for how many purchases a customer will still
make, Gamma-Gamma for how much each will be worth — as implemented in `lifetimes`. The
library is no longer developed, but it is small (numpy/scipy/pandas/autograd), reproduces the
published CDNOW parameters to three decimals (tests/warehouse/test_customer_value.py), and its
maintained successors pull in a full probabilistic-programming stack (pymc, aesara/pytensor,
numba) that would dwarf the rest of the install.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from warehouse.arrow import TIMESTAMP
from warehouse.crm import CrmImportError
from warehouse.db import transaction
from warehouse.load import upsert

# warehouse column → column of the bundled per-invoice export (resonanz/sample/crm/invoices.csv)
INVOICE_MAPPING: dict[str, str] = {
    "invoice_no": "invoice_no",
    "customer_id": "customer_id",
    "invoice_date": "invoice_date",
    "n_lines": "n_lines",
    "quantity": "quantity",
    "amount": "amount_gbp",
    "country": "country",
}
INVOICE_TYPES: dict[str, pa.DataType] = {
    "invoice_no": pa.string(), "customer_id": pa.string(), "invoice_date": pa.timestamp("us"),
    "n_lines": pa.int64(), "quantity": pa.int64(), "amount": pa.float64(), "country": pa.string(),
}
ABC_LIMITS = (0.80, 0.95)  # cumulative revenue share closing class A, then B
CLV_MONTHS = 12
LAPSED_SEGMENTS = ("at_risk", "cant_lose", "hibernating", "lost")


@dataclass(frozen=True, slots=True)
class ValueSummary:
    """What one computation stored: customers per ABC class and the fitted model parameters."""

    customers: int
    abc_counts: dict[str, int]
    bgnbd_params: dict[str, float]
    gamma_gamma_params: dict[str, float]
    observation_end: datetime


def import_invoices(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    crm_source: str,
    mapping: Mapping[str, str] = INVOICE_MAPPING,
    now: datetime | None = None,
) -> int:
    """Upsert one row per invoice from a CSV export; returns the number of invoices in the file."""
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={mapping["invoice_no"]: pa.string(), mapping["customer_id"]: pa.string()},
        strings_can_be_null=True))
    missing = [src for src in mapping.values() if src not in table.column_names]
    if missing:
        raise CrmImportError(
            f"{path}: missing column(s) {', '.join(missing)}; have {', '.join(table.column_names)}. "
            "Adjust the column mapping."
        )
    columns = {}
    for target, src in mapping.items():
        column = table[src]
        if pa.types.is_timestamp(INVOICE_TYPES[target]) and pa.types.is_string(column.type):
            column = pc.strptime(column, format="%Y-%m-%d %H:%M:%S", unit="us")
        columns[target] = column.cast(INVOICE_TYPES[target])
    n = table.num_rows
    columns["crm_source"] = pa.array([crm_source] * n)
    columns["loaded_at"] = pa.array([now or datetime.now(UTC)] * n, TIMESTAMP)
    batch = pa.table(columns)
    keys = batch["invoice_no"].to_pylist()
    last = {key: i for i, key in enumerate(keys)}
    batch = batch.take(sorted(last.values()))
    with transaction(con):
        upsert(con, "customer_invoices", batch, ("invoice_no",))
    return batch.num_rows


def abc_classes(revenue: pd.Series) -> pd.Series:
    """A for the customers making the top 80 % of revenue, B for the next 15 %, C for the rest."""
    ordered = revenue.clip(lower=0).sort_values(ascending=False, kind="stable")
    total = ordered.sum()
    if total <= 0:
        return pd.Series("C", index=revenue.index)
    # Share of revenue already covered before each customer: the customer who crosses 80 % is A.
    before = (ordered.cumsum() - ordered) / total
    classes = np.where(before < ABC_LIMITS[0], "A", np.where(before < ABC_LIMITS[1], "B", "C"))
    result = pd.Series(classes, index=ordered.index)
    result[ordered <= 0] = "C"
    return result.reindex(revenue.index)


def _quintile(values: pd.Series, higher_is_better: bool) -> pd.Series:
    ranks = values.rank(method="first", ascending=higher_is_better)
    return pd.qcut(ranks, 5, labels=[1, 2, 3, 4, 5]).astype(int)


def rfm_segment(r: int, f: int) -> str:
    """Name the segment of a recency and frequency quintile (5 = best)."""
    if r >= 4 and f >= 4:
        return "champions"
    if r >= 3 and f >= 3:
        return "loyal"
    if r >= 4 and f == 1:
        return "new"
    if r >= 3:
        return "promising"
    if r == 1 and f >= 4:
        return "cant_lose"
    if f >= 3:
        return "at_risk"
    if r == 1 and f == 1:
        return "lost"
    if r == 2 and f == 2:
        return "need_attention"
    return "hibernating"


def customer_value_frame(invoices: pd.DataFrame, observation_end: pd.Timestamp) -> tuple[pd.DataFrame, dict, dict]:
    """Compute ABC, RFM and CLV per customer from invoices (customer_id, invoice_date, amount)."""
    from lifetimes import GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    revenue = invoices.groupby("customer_id")["amount"].sum()
    purchases = invoices[invoices["amount"] > 0]
    per_customer = purchases.groupby("customer_id").agg(
        last=("invoice_date", "max"), frequency=("invoice_date", "count"))
    frame = pd.DataFrame({"monetary": revenue}).join(per_customer, how="inner")
    frame["recency_days"] = (observation_end - frame["last"]).dt.days.astype(int)
    frame["abc_class"] = abc_classes(frame["monetary"])
    r = _quintile(frame["recency_days"], higher_is_better=False)
    f = _quintile(frame["frequency"], higher_is_better=True)
    m = _quintile(frame["monetary"], higher_is_better=True)
    frame["rfm_score"] = r.astype(str) + f.astype(str) + m.astype(str)
    frame["rfm_segment"] = [rfm_segment(ri, fi) for ri, fi in zip(r, f, strict=True)]

    # Repeat purchases in distinct weeks, time in weeks: in days the BG/NBD fit of the bundled
    # sample does not converge. No penalizer: it shrinks q of Gamma-Gamma below 1, where the mean
    # spend is undefined and CLV becomes NaN.
    summary = summary_data_from_transaction_data(
        purchases, "customer_id", "invoice_date", monetary_value_col="amount",
        observation_period_end=observation_end, freq="W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bgf = fit_bgnbd(summary)
        repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
        ggf = GammaGammaFitter(penalizer_coef=0.0).fit(repeat["frequency"], repeat["monetary_value"])
        clv = ggf.customer_lifetime_value(
            bgf, summary["frequency"], summary["recency"], summary["T"],
            summary["monetary_value"].clip(lower=0), time=CLV_MONTHS, freq="W", discount_rate=0.01)
        p_alive = bgf.conditional_probability_alive(summary["frequency"], summary["recency"], summary["T"])
    frame["clv_12m"] = clv.reindex(frame.index)
    frame["p_alive"] = pd.Series(np.asarray(p_alive), index=summary.index).reindex(frame.index)
    return frame, dict(bgf.params_), dict(ggf.params_)


def fit_bgnbd(summary: pd.DataFrame):  # type: ignore[no-untyped-def]
    """Fit BG/NBD on (frequency, recency, T), adding a small penalizer only if it does not converge."""
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import ConvergenceError

    for penalizer in (0.0, 0.001, 0.01):
        try:
            return BetaGeoFitter(penalizer_coef=penalizer).fit(
                summary["frequency"], summary["recency"], summary["T"])
        except ConvergenceError:
            continue
    raise ValueError("BG/NBD did not converge on these invoices, even with a penalizer")


def compute_customer_value(
    con: duckdb.DuckDBPyConnection,
    observation_end: datetime | None = None,
    now: datetime | None = None,
) -> ValueSummary:
    """Recompute `customer_value` for every customer with invoices, replacing the table's rows."""
    invoices = con.execute(
        "SELECT customer_id, invoice_date, amount FROM customer_invoices ORDER BY invoice_date"
    ).df()
    if invoices.empty:
        raise ValueError("no invoices in the warehouse: import them first (import_invoices)")
    # Default: the day after the newest invoice, i.e. the moment the export was taken.
    end = pd.Timestamp(observation_end) if observation_end else invoices["invoice_date"].max().normalize() + pd.Timedelta(days=1)
    frame, bg_params, gg_params = customer_value_frame(invoices, end)
    batch = pa.table({
        "customer_id": pa.array(frame.index.astype(str).tolist(), pa.string()),
        "abc_class": frame["abc_class"].tolist(),
        "rfm_segment": frame["rfm_segment"].tolist(),
        "rfm_score": frame["rfm_score"].tolist(),
        "recency_days": pa.array(frame["recency_days"].tolist(), pa.int32()),
        "frequency": pa.array(frame["frequency"].tolist(), pa.int32()),
        "monetary": pa.array(frame["monetary"].round(2).tolist(), pa.float64()),
        "p_alive": pa.array(frame["p_alive"].tolist(), pa.float64()),
        "clv_12m": pa.array(frame["clv_12m"].round(2).tolist(), pa.float64()),
        "computed_at": pa.array([now or datetime.now(UTC)] * len(frame), TIMESTAMP),
    })
    with transaction(con):
        con.execute("DELETE FROM customer_value")
        upsert(con, "customer_value", batch, ("customer_id",))
    counts = frame["abc_class"].value_counts().to_dict()
    return ValueSummary(
        customers=len(frame),
        abc_counts={k: int(counts.get(k, 0)) for k in "ABC"},
        bgnbd_params={k: float(v) for k, v in bg_params.items()},
        gamma_gamma_params={k: float(v) for k, v in gg_params.items()},
        observation_end=end.to_pydatetime(),
    )
