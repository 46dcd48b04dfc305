"""CRM import with a column mapping, and handle linking that respects manual decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.records import Account, Cursor, Page, Provenance, RawPayload
from resonanz.settings import SAMPLE_DIR
from warehouse.crm import CrmImportError, import_customers, import_identities, link_accounts_by_handle
from warehouse.db import open_warehouse
from warehouse.load import load_pages


@pytest.fixture
def con(tmp_path):
    connection = open_warehouse(tmp_path / "w.duckdb")
    yield connection
    connection.close()


def test_import_bundled_uci_customers_twice(con):
    path = SAMPLE_DIR / "crm" / "customers.csv"
    assert import_customers(con, path, "uci") == 4372
    assert import_customers(con, path, "uci") == 4372
    count, spend = con.execute("SELECT count(*), round(sum(total_spend), 2) FROM customers").fetchone()
    assert count == 4372
    assert spend == pytest.approx(8_300_065.81)
    # Customer 12347 (Iceland) spent 4,310 GBP in 7 invoices in the real data.
    assert con.execute("SELECT country, n_invoices, total_spend FROM customers WHERE customer_id = '12347'").fetchone() == (
        "Iceland", 7, 4310.0)


def test_mapping_names_missing_columns(con, tmp_path):
    bad = tmp_path / "crm.csv"
    bad.write_text("Kundennummer,Land\n1,DE\n", encoding="utf-8")
    with pytest.raises(CrmImportError, match="CustomerID"):
        import_customers(con, bad, "erp")
    mapped = import_customers(con, bad, "erp", mapping={"customer_id": "Kundennummer", "country": "Land"})
    assert mapped == 1
    assert con.execute("SELECT customer_id, country FROM customers").fetchall() == [("1", "DE")]


def test_links_by_handle_and_keeps_manual_status(con, tmp_path):
    identities = tmp_path / "ids.csv"
    identities.write_text(
        "customer_id,source,handle,display_name,note\n12347,x,Lolloseb,,test\n12348,x,nobody_here,,test\n",
        encoding="utf-8",
    )
    import_identities(con, identities)
    raw = RawPayload(Provenance("x", "replay", datetime(2016, 4, 8, tzinfo=UTC), "t"), "{}")
    load_pages(con, [Page(raw, Cursor("s", "q"), accounts=[Account("x", "lolloseb", "lolloseb")])])
    assert link_accounts_by_handle(con) == 1
    con.execute("UPDATE account_customer_links SET status = 'rejected'")
    link_accounts_by_handle(con)
    assert con.execute("SELECT account_id, customer_id, status FROM account_customer_links").fetchall() == [
        ("lolloseb", "12347", "rejected")]
