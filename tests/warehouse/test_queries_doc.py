"""Every example query in docs/queries.md runs and answers with rows on a populated warehouse."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "queries.md"


def example_queries() -> list[tuple[str, str]]:
    """(question, sql) for each '### ' question that has a ```sql block."""
    text = DOC.read_text(encoding="utf-8")
    found = []
    for section in re.split(r"^### ", text, flags=re.MULTILINE)[1:]:
        question = section.splitlines()[0].strip()
        for sql in re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL):
            found.append((question, sql.strip()))
    return found


QUERIES = example_queries()


def test_doc_has_eight_to_twelve_questions():
    assert 8 <= len(QUERIES) <= 12
    assert len({q for q, _ in QUERIES}) == len(QUERIES)


@pytest.mark.parametrize(("question", "sql"), QUERIES, ids=[q[:40] for q, _ in QUERIES])
def test_query_answers_with_rows(populated: duckdb.DuckDBPyConnection, question: str, sql: str):
    rows = populated.execute(sql).fetchall()
    assert rows, f"no rows for: {question}"
    # A view that silently lost its data shows up as all-NULL rows.
    assert any(value is not None for row in rows for value in row)
