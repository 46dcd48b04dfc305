"""Age-based retention of raw payloads, per source, as configured in `Settings.retention`.

A policy keeps a source's raw payloads for `raw_payload_days` (by `retrieved_at`), then either
deletes them or pseudonymises them (account ids, handles and names in the body replaced by keyed
pseudonyms, see warehouse/pseudonym.py; the row stays). A source's own policy wins over "*".

Deleting a payload leaves the posts and accounts parsed from it in place: their `raw_id` then
points to no row, which only means the original record is gone (it cannot be re-parsed).
A pseudonymised body is no longer the hash its `raw_id` was made from; the raw_id stays so rows
keep pointing to it. Both are idempotent: a second run with the same policies changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import duckdb
import pyarrow as pa

from warehouse.db import transaction
from warehouse.pseudonym import pseudonym_key, pseudonymise_body


class Policy(Protocol):
    """What apply_retention reads from a policy (resonanz.settings.RetentionPolicy)."""

    source: str
    raw_payload_days: int | None
    mode: Literal["delete", "pseudonymise"]


@dataclass(slots=True)
class RetentionReport:
    """Raw payloads deleted and pseudonymised, per source."""

    deleted: dict[str, int] = field(default_factory=dict)
    pseudonymised: dict[str, int] = field(default_factory=dict)

    @property
    def total_deleted(self) -> int:
        return sum(self.deleted.values())

    @property
    def total_pseudonymised(self) -> int:
        return sum(self.pseudonymised.values())


def policy_for(source: str, policies: list[Policy]) -> Policy | None:
    """Return the source's own policy, else the "*" one, else None."""
    own = [p for p in policies if p.source == source]
    fallback = [p for p in policies if p.source == "*"]
    return (own or fallback or [None])[-1]


def apply_retention(
    con: duckdb.DuckDBPyConnection, policies: list[Policy], now: datetime | None = None
) -> RetentionReport:
    """Delete or pseudonymise raw payloads older than each source's policy, in one transaction."""
    now = now or datetime.now(UTC)
    report = RetentionReport()
    active = [p for p in policies if p.raw_payload_days is not None]
    if not active:
        return report
    # Fail before touching anything if a policy needs the key and it is missing.
    key = pseudonym_key() if any(p.mode == "pseudonymise" for p in active) else b""
    with transaction(con):
        sources = [r[0] for r in con.execute("SELECT DISTINCT source FROM raw_payloads ORDER BY 1").fetchall()]
        for source in sources:
            policy = policy_for(source, active)
            if policy is None or policy.raw_payload_days is None:
                continue
            cutoff = now - timedelta(days=policy.raw_payload_days)
            if policy.mode == "delete":
                n = len(con.execute("DELETE FROM raw_payloads WHERE source = ? AND retrieved_at < ? RETURNING 1",
                                    [source, cutoff]).fetchall())
                if n:
                    report.deleted[source] = n
            else:
                n = _pseudonymise(con, source, cutoff, key)
                if n:
                    report.pseudonymised[source] = n
    return report


def _pseudonymise(con: duckdb.DuckDBPyConnection, source: str, cutoff: datetime, key: bytes) -> int:
    rows = con.execute(
        """
        SELECT r.raw_id, r.body,
               list_distinct(flatten([
                   coalesce((SELECT list(a.account_id) || list(a.handle) || list(a.display_name)
                             FROM accounts a WHERE a.raw_id = r.raw_id), []),
                   coalesce((SELECT list(p.author_id) FROM posts p WHERE p.raw_id = r.raw_id), [])
               ])) AS known
        FROM raw_payloads r WHERE r.source = ? AND r.retrieved_at < ?
        """,
        [source, cutoff],
    ).fetchall()
    changed_ids, changed_bodies = [], []
    for raw_id, body, known in rows:
        after = pseudonymise_body(body, key, [k for k in known or [] if k])
        if after != body:
            changed_ids.append(raw_id)
            changed_bodies.append(after)
    if not changed_ids:
        return 0
    con.register("_pseudonymised", pa.table({"raw_id": changed_ids, "body": changed_bodies}))
    try:
        con.execute("UPDATE raw_payloads r SET body = s.body FROM _pseudonymised s WHERE r.raw_id = s.raw_id")
    finally:
        con.unregister("_pseudonymised")
    return len(changed_ids)
