"""CRM import and linking social accounts to known customers.

Customers come from a CSV export with a column mapping (CRM systems name columns differently);
identities (handles the CRM knows for a customer) come from a second file. Linking here is
exact, case-insensitive handle matching with probability 1.0; probabilistic linking on names,
bios and locations is a later stage of this room.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from warehouse.arrow import TIMESTAMP
from warehouse.db import transaction
from warehouse.load import upsert

# warehouse column → column in the UCI Online Retail customer export
UCI_ONLINE_RETAIL_MAPPING: dict[str, str] = {
    "customer_id": "CustomerID",
    "country": "Country",
    "first_purchase": "first_purchase",
    "last_purchase": "last_purchase",
    "n_invoices": "n_invoices",
    "total_spend": "total_spend_gbp",
}
CUSTOMER_TYPES: dict[str, pa.DataType] = {
    "customer_id": pa.string(),
    "country": pa.string(),
    "first_purchase": pa.timestamp("us"),
    "last_purchase": pa.timestamp("us"),
    "n_invoices": pa.int64(),
    "total_spend": pa.float64(),
}


class CrmImportError(ValueError):
    """The CRM file does not have the columns the mapping names."""


def import_customers(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    crm_source: str,
    mapping: Mapping[str, str] = UCI_ONLINE_RETAIL_MAPPING,
    now: datetime | None = None,
) -> int:
    """Upsert customers from a CSV export; returns the number of customers in the file."""
    table = _read_csv(path, pacsv.ConvertOptions(strings_can_be_null=True))
    missing = [src for src in mapping.values() if src not in table.column_names]
    if missing:
        raise CrmImportError(
            f"{path}: missing column(s) {', '.join(missing)}; have {', '.join(table.column_names)}. "
            "Adjust the column mapping."
        )
    if table.num_rows == 0:
        return 0
    blank = pc.is_null(table[mapping["customer_id"]]).to_pylist()
    if any(blank):
        # Line numbers count the header as line 1, as a spreadsheet shows them.
        lines = [i + 2 for i, is_blank in enumerate(blank) if is_blank][:10]
        raise CrmImportError(f"{path}: {mapping['customer_id']} is empty on line(s) {lines}; every customer needs an id")
    columns = {}
    for target, src in mapping.items():
        wanted = CUSTOMER_TYPES[target]
        try:
            column = table[src]
            if pa.types.is_timestamp(wanted) and pa.types.is_string(column.type):
                column = pc.strptime(column, format="%Y-%m-%d %H:%M:%S", unit="us")
            columns[target] = column.cast(wanted)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise CrmImportError(f"{path}: column {src} cannot be read as {wanted}: {exc}") from None
    n = table.num_rows
    columns["crm_source"] = pa.array([crm_source] * n)
    columns["loaded_at"] = pa.array([now or datetime.now(UTC)] * n, TIMESTAMP)
    batch = pa.table(columns)
    # A CRM export may list a customer twice; keep the last row, as the export order is the CRM's.
    batch = batch.take(_last_index_per_key(batch["customer_id"]))
    with transaction(con):
        upsert(con, "customers", batch, ("customer_id",))
    return batch.num_rows


def import_identities(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Upsert the social identities the CRM knows (customer_id, source, handle, ...)."""
    table = _read_csv(path, pacsv.ConvertOptions(
        column_types={"customer_id": pa.string(), "handle": pa.string()}, strings_can_be_null=True))
    needed = ["customer_id", "source", "handle", "display_name", "note"]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise CrmImportError(f"{path}: missing column(s) {', '.join(missing)}")
    batch = table.select(needed)
    with transaction(con):
        upsert(con, "customer_identities", batch, ("customer_id", "source", "handle"))
    return batch.num_rows


def link_accounts_by_handle(con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> int:
    """Link accounts whose handle equals a CRM identity's handle on the same platform.

    A link an analyst confirmed or rejected keeps its status when linking runs again.
    """
    with transaction(con):
        con.execute(
            """
            INSERT INTO account_customer_links
            SELECT DISTINCT a.source, a.account_id, i.customer_id, 1.0, 'exact_handle', 'auto', ?
            FROM customer_identities i
            JOIN accounts a ON a.source = i.source AND lower(a.handle) = lower(i.handle)
            ON CONFLICT (source, account_id, customer_id) DO UPDATE SET
                match_probability = excluded.match_probability,
                method = excluded.method,
                status = CASE WHEN account_customer_links.status IN ('confirmed', 'rejected')
                              THEN account_customer_links.status ELSE excluded.status END
            """,
            [now or datetime.now(UTC)],
        )
    return int(con.execute("SELECT count(*) FROM account_customer_links").fetchone()[0])  # type: ignore[index]


def _read_csv(path: Path, options: pacsv.ConvertOptions) -> pa.Table:
    """Read a CRM export, turning Arrow's encoding and parse errors into one line naming the file."""
    try:
        return pacsv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as exc:
        raise CrmImportError(f"{path}: not a readable UTF-8 CSV export ({exc})") from None


def _last_index_per_key(keys: pa.ChunkedArray) -> list[int]:
    last: dict[object, int] = {}
    for i, key in enumerate(keys.to_pylist()):
        last[key] = i
    return sorted(last.values())
