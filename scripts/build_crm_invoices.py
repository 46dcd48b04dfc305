"""Aggregate the UCI Online Retail transaction sample to one row per invoice (dev tool, run once).

Customer-value models (RFM, BG/NBD, Gamma-Gamma) need when each customer bought and for how
much, not the product lines, so the bundled file keeps one row per invoice: 66,250 lines
become 3,441 invoices (~0.15 MB instead of 5.9 MB).
Usage: python scripts/build_crm_invoices.py [path to transactions_sample_15pct_customers.csv]
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

SHARED = Path("/work/shared/data/crm_online_retail_uci/transactions_sample_15pct_customers.csv")
TARGET = Path(__file__).resolve().parents[1] / "resonanz" / "sample" / "crm" / "invoices.csv"


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SHARED
    if not source.exists():
        sys.exit(f"{source} not found: pass the path of the UCI transaction sample")
    con = duckdb.connect()
    con.execute(
        f"""
        COPY (
            SELECT InvoiceNo AS invoice_no, CustomerID AS customer_id,
                   strftime(min(InvoiceDate), '%Y-%m-%d %H:%M:%S') AS invoice_date,
                   count(*) AS n_lines, sum(Quantity) AS quantity,
                   round(sum(Quantity * UnitPrice), 2) AS amount_gbp,
                   any_value(Country ORDER BY Country) AS country
            FROM read_csv(?, types = {{'InvoiceNo': 'VARCHAR', 'CustomerID': 'VARCHAR',
                                       'InvoiceDate': 'TIMESTAMP'}})
            GROUP BY InvoiceNo, CustomerID
            ORDER BY invoice_date, invoice_no
        ) TO '{TARGET}' (HEADER, DELIMITER ',')
        """.replace("?", f"'{source}'")
    )
    n = con.execute(f"SELECT count(*) FROM read_csv('{TARGET}')").fetchone()[0]  # type: ignore[index]
    print(f"wrote {n} invoices to {TARGET}")


if __name__ == "__main__":
    main()
