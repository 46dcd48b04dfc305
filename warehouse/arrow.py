"""Turn lists of record dataclasses into Arrow tables, column by column."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from typing import Any

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")


def records_to_arrow(
    rows: Sequence[Any],
    schema: pa.Schema,
    extra: dict[str, Any] | None = None,
) -> pa.Table:
    """Build a table with `schema` from dataclass rows; `extra` fills constant columns.

    Dict-valued fields are stored as JSON text. Building columns directly avoids a dict per row,
    which matters at a million rows.
    """
    extra = extra or {}
    columns: dict[str, list[Any]] = {}
    for name in schema.names:
        if name in extra:
            columns[name] = [extra[name]] * len(rows)
        else:
            values = [getattr(row, name) for row in rows]
            if values and isinstance(next((v for v in values if v is not None), None), dict):
                values = [None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True) for v in values]
            columns[name] = values
    return pa.Table.from_pydict(columns, schema=schema)


def schema_of(record_type: type, overrides: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """Derive an Arrow schema from a dataclass: str→string, int→int64, float→float64,
    bool→bool, datetime→timestamp[UTC], dict→JSON string."""
    if not is_dataclass(record_type):
        raise TypeError(f"{record_type!r} is not a dataclass")
    mapping = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
               "datetime": TIMESTAMP, "dict": pa.string()}
    overrides = overrides or {}
    result = []
    for field in fields(record_type):
        if field.name in overrides:
            result.append(pa.field(field.name, overrides[field.name]))
            continue
        annotation = str(field.type).replace(" ", "")
        base = annotation.split("|")[0].split("[")[0]
        result.append(pa.field(field.name, mapping.get(base, pa.string())))
    return pa.schema(result)

