"""Erase a person (a social account or a CRM customer) from every table of the warehouse.

What happens to each kind of data:
- Rows that are the person's own (their account, posts and the annotations, entities and brand
  mentions of those posts, their interactions, influence scores, links, CRM rows) are deleted.
- Other people's rows that merely name the person (a reply "@handle ...", an influence
  explanation, an alert) are kept with the handle or id replaced by "[erased]"; references
  to the person's deleted posts (parent_post_id, target_post_id) become NULL.
- Raw payloads are REWRITTEN, not deleted: one page holds a hundred people's posts, and
  deleting it would throw away everyone else's raw record. In a JSON body every object that
  is the person's (a user object, their tweets, mention entities naming them, references to
  their posts) is removed and remaining mentions in other people's text are replaced by
  "[erased]"; a non-JSON body (RSS/XML) gets the text replacement. The raw_id stays, so the
  rows that point to the payload still do; after an erasure it is no longer the body's hash.
- Exports and published snapshots are derived files: re-run `export_all` and
  `publish_snapshot` after an erasure (both replace their previous output completely).

Identifiers shorter than `MIN_TEXT_MATCH` characters are removed structurally only: replacing
such short strings in free text would damage unrelated text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from warehouse.db import transaction

REDACTED = "[erased]"
MIN_TEXT_MATCH = 3
# JSON keys whose value names the object's owner: an object with one of them equal to the
# person's id or handle is the person's and is removed from a raw body.
OWNER_KEYS = ("id", "author_id", "username", "screen_name", "user_id", "handle", "user", "author")
# Columns that hold post or record ids (not names): never rewritten by text replacement.
ID_COLUMNS = frozenset({
    "raw_id", "post_id", "parent_post_id", "conversation_id", "target_post_id", "quarantine_id",
    "alert_id", "run_id", "invoice_no", "source", "task", "kind", "status", "method", "model_name",
    "model_version", "label", "brand", "brand_kind", "content_type", "connector_version", "rule",
    "severity", "abc_class", "rfm_segment", "rfm_score", "crm_source", "country", "source_name",
    "stream",
    # Other people's own ids and handles: the person's rows there are deleted, and a text
    # replacement could corrupt someone else's key (e.g. "anna.k" when erasing "anna").
    "account_id", "src_account_id", "dst_account_id", "customer_id", "handle",
})


@dataclass(slots=True)
class ErasureReport:
    """Rows deleted and rows rewritten per table."""

    deleted: dict[str, int] = field(default_factory=dict)
    rewritten: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, table: str, n: int) -> None:
        if n:
            target = self.deleted if kind == "deleted" else self.rewritten
            target[table] = target.get(table, 0) + n


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> int:
    return len(con.execute(sql + " RETURNING 1", params).fetchall())


def word_pattern(identifiers: Iterable[str]) -> str | None:
    words = sorted({i for i in identifiers if i and len(i) >= MIN_TEXT_MATCH}, key=len, reverse=True)
    if not words:
        return None
    return "(^|[^A-Za-z0-9_])(" + "|".join(re.escape(w) for w in words) + ")([^A-Za-z0-9_]|$)"


def scrub_text(text: str, pattern: re.Pattern[str] | None) -> str:
    """Replace whole-word occurrences of the person's identifiers."""
    if pattern is None:
        return text
    # Two passes: adjacent occurrences share the separator between them.
    for _ in range(2):
        text = pattern.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    return text


def scrub_json(value: Any, owners: set[str], post_ids: set[str], pattern: re.Pattern[str] | None) -> Any:
    """Drop the person's objects from a parsed JSON value and redact mentions in what is left."""
    if isinstance(value, dict):
        return {key: scrub_json(v, owners, post_ids, pattern) for key, v in value.items()
                if key.lower() not in owners
                and not (key in OWNER_KEYS and _names_owner(v, owners, post_ids, key))}
    if isinstance(value, list):
        return [scrub_json(v, owners, post_ids, pattern) for v in value if not _is_persons(v, owners, post_ids)]
    if isinstance(value, str):
        return REDACTED if value.lower() in owners else scrub_text(value, pattern)
    if isinstance(value, int) and not isinstance(value, bool) and str(value) in owners:
        return None
    return value


def _names_owner(value: Any, owners: set[str], post_ids: set[str], key: str) -> bool:
    text = str(value).lower() if isinstance(value, str | int) and not isinstance(value, bool) else None
    return text is not None and (text in owners or (key == "id" and text in post_ids))


def _is_persons(item: Any, owners: set[str], post_ids: set[str]) -> bool:
    if isinstance(item, dict):
        return any(_names_owner(item.get(k), owners, post_ids, k) for k in OWNER_KEYS if k in item)
    return False


def scrub_body(body: str, owners: set[str], post_ids: set[str], pattern: re.Pattern[str] | None) -> str:
    """Rewrite a raw payload body without the person (JSON structurally, anything else as text)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return scrub_text(body, pattern)
    scrubbed = scrub_json(parsed, owners, post_ids, pattern)
    # An untouched body stays byte-for-byte as received.
    return body if scrubbed == parsed else json.dumps(scrubbed, ensure_ascii=False)


def _text_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in con.execute(  # type: ignore[misc]
        """
        SELECT c.table_name, c.column_name, c.data_type
        FROM information_schema.columns c
        JOIN information_schema.tables t ON t.table_name = c.table_name AND t.table_schema = c.table_schema
        WHERE t.table_type = 'BASE TABLE' AND t.table_schema = 'main'
          AND (c.data_type = 'VARCHAR' OR c.data_type = 'JSON')
        ORDER BY c.table_name, c.ordinal_position
        """
    ).fetchall()]


def _scrub_everywhere(
    con: duckdb.DuckDBPyConnection, owners: set[str], post_ids: set[str], report: ErasureReport
) -> None:
    pattern_sql = word_pattern(owners)
    pattern = re.compile(pattern_sql, re.IGNORECASE) if pattern_sql else None
    for table, column, dtype in _text_columns(con):
        if column in ID_COLUMNS and table != "raw_payloads":
            continue
        if table == "raw_payloads" and column != "body":
            continue
        if table in ("schema_version",):
            continue
        if table == "raw_payloads" or dtype == "JSON":
            _rewrite_in_python(con, table, column, owners, post_ids, pattern, report)
        elif pattern_sql:
            n = _count(con, f"UPDATE {table} SET {column} = regexp_replace(regexp_replace({column}, ?, ?, 'gi'), ?, ?, 'gi') "
                       f"WHERE regexp_matches({column}, ?, 'i')",
                       [pattern_sql, f"\\1{REDACTED}\\3", pattern_sql, f"\\1{REDACTED}\\3", pattern_sql])
            report.add("rewritten", table, n)


def _rewrite_in_python(
    con: duckdb.DuckDBPyConnection, table: str, column: str, owners: set[str], post_ids: set[str],
    pattern: re.Pattern[str] | None, report: ErasureReport,
) -> None:
    keys = [r[0] for r in con.execute(
        "SELECT kcu.column_name FROM information_schema.table_constraints tc "
        "JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name "
        "AND kcu.table_name = tc.table_name WHERE tc.table_name = ? AND tc.constraint_type = 'PRIMARY KEY' "
        "ORDER BY kcu.ordinal_position", [table]).fetchall()]
    if not keys:
        return
    needles = "|".join(re.escape(n) for n in sorted(owners | post_ids, key=len, reverse=True) if n)
    if not needles:
        return
    rows = con.execute(
        f"SELECT {', '.join(keys)}, CAST({column} AS VARCHAR) FROM {table} "
        f"WHERE regexp_matches(CAST({column} AS VARCHAR), ?, 'i')",
        [needles],
    ).fetchall()
    changed = []
    for row in rows:
        before = row[-1]
        after = scrub_body(before, owners, post_ids, pattern)
        if after != before:
            changed.append((*row[:-1], after))
    if not changed:
        return
    batch = pa.table({**{k: [r[i] for r in changed] for i, k in enumerate(keys)}, "_new": [r[-1] for r in changed]})
    con.register("_scrubbed", batch)
    try:
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        con.execute(f"UPDATE {table} t SET {column} = s._new FROM _scrubbed s WHERE {on}")
    finally:
        con.unregister("_scrubbed")
    report.add("rewritten", table, len(changed))


def _erase_accounts(
    con: duckdb.DuckDBPyConnection, accounts: list[tuple[str, str]], extra_names: set[str], report: ErasureReport
) -> None:
    owners = {name.lower() for name in extra_names if name}
    post_ids: set[str] = set()
    for source, account_id in accounts:
        handles = con.execute(
            "SELECT handle FROM accounts WHERE source = ? AND account_id = ? AND handle IS NOT NULL",
            [source, account_id]).fetchall()
        owners |= {account_id.lower(), *(h[0].lower() for h in handles)}
        post_ids |= {r[0] for r in con.execute(
            "SELECT post_id FROM posts WHERE source = ? AND author_id = ?", [source, account_id]).fetchall()}
        posts = [source, account_id]
        for table in ("annotations", "entities", "brand_mentions"):
            report.add("deleted", table, _count(con,
                f"DELETE FROM {table} t USING posts p WHERE t.source = p.source AND t.post_id = p.post_id "
                "AND p.source = ? AND p.author_id = ?", posts))
        report.add("deleted", "posts", _count(con, "DELETE FROM posts WHERE source = ? AND author_id = ?", posts))
        report.add("deleted", "interactions", _count(con,
            "DELETE FROM interactions WHERE source = ? AND (src_account_id = ? OR dst_account_id = ?)",
            [source, account_id, account_id]))
        report.add("deleted", "influence_scores", _count(con,
            "DELETE FROM influence_scores WHERE source = ? AND account_id = ?", posts))
        report.add("deleted", "account_customer_links", _count(con,
            "DELETE FROM account_customer_links WHERE source = ? AND account_id = ?", posts))
        for (handle,) in handles:
            report.add("deleted", "customer_identities", _count(con,
                "DELETE FROM customer_identities WHERE source = ? AND lower(handle) = lower(?)", [source, handle]))
        report.add("deleted", "accounts", _count(con,
            "DELETE FROM accounts WHERE source = ? AND account_id = ?", posts))
    if post_ids:
        con.register("_erased_posts", pa.table({"post_id": sorted(post_ids)}))
        try:
            for table, column in (("posts", "parent_post_id"), ("posts", "conversation_id"),
                                  ("interactions", "target_post_id")):
                report.add("rewritten", table, _count(con,
                    f"UPDATE {table} SET {column} = NULL WHERE {column} IN (SELECT post_id FROM _erased_posts)", []))
            # Others' interactions *in* the person's posts have no post left to point to.
            report.add("deleted", "interactions", _count(con,
                "DELETE FROM interactions WHERE post_id IN (SELECT post_id FROM _erased_posts)", []))
        finally:
            con.unregister("_erased_posts")
    _scrub_everywhere(con, owners, post_ids, report)


def erase_account(con: duckdb.DuckDBPyConnection, source: str, account_id: str) -> ErasureReport:
    """Remove a social account and every trace of it from all tables, in one transaction."""
    report = ErasureReport()
    known = con.execute("SELECT 1 FROM accounts WHERE source = ? AND account_id = ?", [source, account_id]).fetchall()
    if not known:
        known = con.execute("SELECT 1 FROM posts WHERE source = ? AND author_id = ? LIMIT 1",
                            [source, account_id]).fetchall()
    if not known:
        raise KeyError(f"no account {source}:{account_id} in the warehouse")
    with transaction(con):
        _erase_accounts(con, [(source, account_id)], set(), report)
    return report


def erase_customer(
    con: duckdb.DuckDBPyConnection, customer_id: str, include_linked_accounts: bool = True
) -> ErasureReport:
    """Remove a customer from every table; with `include_linked_accounts`, also the social accounts
    linked to them as 'auto' or 'confirmed' (the same person). 'review' links are only deleted:
    they may be someone else."""
    report = ErasureReport()
    if not con.execute("SELECT 1 FROM customers WHERE customer_id = ?", [customer_id]).fetchall():
        raise KeyError(f"no customer {customer_id} in the warehouse")
    with transaction(con):
        accounts = [tuple(r) for r in con.execute(
            "SELECT source, account_id FROM account_customer_links "
            "WHERE customer_id = ? AND status IN ('auto', 'confirmed') ORDER BY ALL", [customer_id]).fetchall()]
        names = {r[0] for r in con.execute(
            "SELECT handle FROM customer_identities WHERE customer_id = ?", [customer_id]).fetchall()}
        for table in ("account_customer_links", "customer_identities", "customer_invoices", "customer_value", "customers"):
            report.add("deleted", table, _count(con, f"DELETE FROM {table} WHERE customer_id = ?", [customer_id]))
        if include_linked_accounts and accounts:
            _erase_accounts(con, accounts, names, report)  # type: ignore[arg-type]
        else:
            _scrub_everywhere(con, {n.lower() for n in names}, set(), report)
    return report


def find_traces(con: duckdb.DuckDBPyConnection, needles: Iterable[str]) -> list[tuple[str, str, int]]:
    """(table, column, rows) for every text column of every table containing one of `needles` as a word."""
    pattern = word_pattern(needles)
    if pattern is None:
        return []
    hits = []
    for table, column, _ in _text_columns(con):
        n = con.execute(
            f"SELECT count(*) FROM {table} WHERE regexp_matches(CAST({column} AS VARCHAR), ?, 'i')", [pattern]
        ).fetchall()[0][0]
        if n:
            hits.append((table, column, int(n)))
    return hits
