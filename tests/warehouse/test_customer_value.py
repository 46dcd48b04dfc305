"""ABC, RFM and CLV on the real UCI invoices; the CLV models reproduce published parameters."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from resonanz.settings import SAMPLE_DIR
from warehouse.crm import CrmImportError
from warehouse.customer_value import abc_classes, compute_customer_value, import_invoices, rfm_segment
from warehouse.db import open_warehouse, table_counts
from warehouse.schema import DATA_TABLES

INVOICES = SAMPLE_DIR / "crm" / "invoices.csv"


@pytest.fixture
def con(tmp_path):
    connection = open_warehouse(tmp_path / "w.duckdb")
    yield connection
    connection.close()


def test_lifetimes_reproduces_the_cdnow_parameters_of_the_papers():
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.datasets import load_cdnow_summary, load_cdnow_summary_data_with_monetary_value

    # Fader, Hardie & Lee (2005), CDNOW sample: r=0.243, alpha=4.414, a=0.793, b=2.426.
    d = load_cdnow_summary(index_col=[0])
    bg = BetaGeoFitter().fit(d["frequency"], d["recency"], d["T"])
    assert bg.params_["r"] == pytest.approx(0.243, abs=0.001)
    assert bg.params_["alpha"] == pytest.approx(4.414, abs=0.01)
    assert bg.params_["a"] == pytest.approx(0.793, abs=0.001)
    assert bg.params_["b"] == pytest.approx(2.426, abs=0.01)
    # Fader & Hardie (2013), Gamma-Gamma on the same customers: p=6.25, q=3.74, gamma=15.44.
    m = load_cdnow_summary_data_with_monetary_value()
    repeat = m[m["frequency"] > 0]
    gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    assert gg.params_["p"] == pytest.approx(6.25, abs=0.01)
    assert gg.params_["q"] == pytest.approx(3.74, abs=0.01)
    assert gg.params_["v"] == pytest.approx(15.44, abs=0.02)


def test_abc_classes_split_revenue_80_15_5():
    revenue = pd.Series({"a": 500.0, "b": 300.0, "c": 100.0, "d": 50.0, "e": 30.0, "f": 20.0, "g": -5.0})
    classes = abc_classes(revenue)
    # a and b make the first 80 % of revenue, c and d the next 15 %, the rest (and refunds) is C.
    assert classes.to_dict() == {"a": "A", "b": "A", "c": "B", "d": "B", "e": "C", "f": "C", "g": "C"}


def test_rfm_segment_names():
    assert rfm_segment(5, 5) == "champions"
    assert rfm_segment(1, 5) == "cant_lose"
    assert rfm_segment(2, 4) == "at_risk"
    assert rfm_segment(1, 1) == "lost"
    assert rfm_segment(5, 1) == "new"


def test_customer_value_on_the_uci_sample(con):
    assert import_invoices(con, INVOICES, "uci") == 3441
    summary = compute_customer_value(con, now=datetime(2026, 11, 1, tzinfo=UTC))
    assert summary.customers == 650  # 655 sampled customers, 5 of whom only cancelled
    assert summary.observation_end == datetime(2011, 12, 10)
    shares = dict(con.execute(
        "SELECT abc_class, sum(monetary) / (SELECT sum(monetary) FROM customer_value WHERE monetary > 0) "
        "FROM customer_value WHERE monetary > 0 GROUP BY 1").fetchall())
    assert 0.78 <= shares["A"] <= 0.81
    assert 0.13 <= shares["B"] <= 0.16
    rows = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE clv_12m IS NULL OR isnan(clv_12m)), min(clv_12m), "
        "count(*) FILTER (WHERE p_alive < 0 OR p_alive > 1) FROM customer_value").fetchall()[0]
    assert rows[0] == 650 and rows[1] == 0 and rows[2] > 0 and rows[3] == 0
    # Customers who bought more often and more recently are expected to be worth more.
    top, bottom = con.execute(
        "SELECT avg(clv_12m) FILTER (WHERE rfm_segment = 'champions'), avg(clv_12m) FILTER (WHERE rfm_segment = 'lost') "
        "FROM customer_value").fetchall()[0]
    assert top > 3 * bottom
    # Customer 12347 (Iceland) bought 7 times for 4,310 GBP over the year: a champion of class A.
    known = con.execute("SELECT abc_class, frequency, monetary FROM customer_value WHERE customer_id = '12347'").fetchall()
    if known:  # only if the 15 % sample drew this customer
        assert known[0][0] == "A"


def test_recomputing_and_reimporting_add_no_rows(con):
    import_invoices(con, INVOICES, "uci")
    compute_customer_value(con)
    first = table_counts(con, DATA_TABLES)
    import_invoices(con, INVOICES, "uci")
    compute_customer_value(con)
    assert table_counts(con, DATA_TABLES) == first


def test_invoice_mapping_names_missing_columns(con, tmp_path):
    bad = tmp_path / "inv.csv"
    bad.write_text("Rechnung,Kunde,Datum,Betrag\nR1,1,2011-01-01 10:00:00,10.5\n", encoding="utf-8")
    with pytest.raises(CrmImportError, match="invoice_no"):
        import_invoices(con, bad, "erp")


def test_no_invoices_is_a_clear_error(con):
    with pytest.raises(ValueError, match="import them first"):
        compute_customer_value(con)
